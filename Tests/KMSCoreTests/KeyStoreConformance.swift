import Foundation
import KMSCore
import KMSPostgres
import KMSTestSupport
import Testing

/// A named way to make a fresh, empty store; a conformance suite runs on each.
struct StoreFactory<Store>: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () async throws -> Store

    var testDescription: String { name }
}

typealias KeyStoreFactory = StoreFactory<any KeyStore>

extension StoreFactory<any KeyStore> {
    /// In-memory and file always; PostgreSQL when `KMS_TEST_POSTGRES_URL` is set.
    static var all: [KeyStoreFactory] {
        var factories = [
            KeyStoreFactory(name: "in-memory", make: { InMemoryKeyStore() }),
            KeyStoreFactory(name: "file") {
                try FileKeyStore(
                    folder: temporaryFolder(), lifecycle: KeyLifecycle(graceMs: 1000), clock: SystemClock())
            },
        ]
        if PostgresTestDatabase.url != nil {
            factories.append(
                KeyStoreFactory(name: "postgres") {
                    PostgresKeyStore(
                        database: try await PostgresTestDatabase.fresh(), lifecycle: KeyLifecycle(graceMs: 1000),
                        clock: SystemClock())
                })
        }
        return factories
    }
}

func temporaryFolder() -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("kms-core-\(UUID().uuidString)")
}

func sampleRecord(_ id: String = KeyIdentifier.newKeyId(), alias: String? = nil, versions: Int = 1) -> KeyRecord {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    return KeyRecord(
        keyId: id, alias: alias, createdAt: now,
        versions: (1...versions).map {
            KeyVersion(
                version: $0, createdAt: now.addingTimeInterval(Double($0)),
                wrappedMaterial: Data(repeating: UInt8($0), count: 60))
        })
}

/// The contract of `KeyStore`, checked the same way for every implementation.
@Suite struct KeyStoreConformance {
    @Test(arguments: KeyStoreFactory.all)
    func createThenReadByIdAndAlias(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let record = sampleRecord(alias: "photos")
        try await store.create(record)
        #expect(try await store.key(id: record.keyId) == record)
        #expect(try await store.key(alias: "photos") == record)
        #expect(try await store.key(id: "key_missing") == nil)
        #expect(try await store.key(alias: "nothing") == nil)
        #expect(try await store.freshKey(id: record.keyId) == record)
        #expect(try await store.freshKey(id: "key_missing") == nil)
        #expect(try await store.count() == 1)
    }

    @Test(arguments: KeyStoreFactory.all)
    func duplicatesAreRefused(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let record = sampleRecord(alias: "photos")
        try await store.create(record)
        let alias = await #expect(throws: KMSError.self) { try await store.create(sampleRecord(alias: "photos")) }
        #expect(alias?.code == .aliasInUse)
        let id = await #expect(throws: KMSError.self) { try await store.create(sampleRecord(record.keyId)) }
        #expect(id?.code == .internalError)
        #expect(try await store.count() == 1)
    }

    @Test(arguments: KeyStoreFactory.all)
    func updateIsCompareAndSet(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let record = sampleRecord()
        try await store.create(record)
        let two = sampleRecord(record.keyId, versions: 2)
        guard case .updated(let stored) = try await store.update(two, expectedRevision: 1) else {
            Issue.record("the first update lost a race it could not have lost")
            return
        }
        #expect(stored.revision == 2 && stored.versions.count == 2)
        let stale = try await store.update(sampleRecord(record.keyId, versions: 3), expectedRevision: 1)
        #expect(stale == .conflict)
        #expect(try await store.key(id: record.keyId)?.versions.count == 2)
    }

    @Test(arguments: KeyStoreFactory.all)
    func listIsSortedAndPaged(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let ids = (0..<7).map { _ in KeyIdentifier.newKeyId() }
        for id in ids { try await store.create(sampleRecord(id)) }
        let sorted = ids.sorted()
        #expect(try await store.list(after: nil, limit: 3).map(\.keyId) == Array(sorted[0..<3]))
        #expect(try await store.list(after: sorted[2], limit: 3).map(\.keyId) == Array(sorted[3..<6]))
        #expect(try await store.list(after: sorted[6], limit: 3).isEmpty)
        #expect(try await store.list(after: "", limit: 100).count == 7)
    }

    /// Many clients rotating one key: no version lost, one active.
    @Test(arguments: KeyStoreFactory.all)
    func concurrentRotationsLoseNothing(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let ring = KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: SystemClock())
        let record = try await ring.generate(alias: nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    // A database that answers late on a loaded machine says "try again" (server_busy; seen
                    // on the read of the key, before anything is written); a client does, and nothing may
                    // be lost. A busy answer to the write itself would leave its outcome unknown and could
                    // show here as one version too many: not seen.
                    for _ in 0..<5 {
                        do {
                            _ = try await ring.rotate(record.keyId)
                            return
                        } catch let error as KMSError where error.code == .serverBusy {
                            try await Task.sleep(for: .milliseconds(200))
                        }
                    }
                    _ = try await ring.rotate(record.keyId)
                }
            }
            try await group.waitForAll()
        }
        let final = try #require(try await store.key(id: record.keyId))
        #expect(final.versions.map(\.version) == Array(1...41))
        #expect(final.revision == 41)
        #expect(Set(final.versions.map(\.wrappedMaterial)).count == 41)
    }
}
