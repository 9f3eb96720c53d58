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
@Suite(.shutsDownItsPools) struct KeyStoreConformance {
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
        let retries = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    // A database that answers late on a loaded machine says "try again" (server_busy); a
                    // client does, and nothing may be lost. When the deadline passed while the write was
                    // committing, its outcome is unknown and the retry adds a version: seen once on
                    // 2026-12-02, in a full run beside a CI run with both cores held busy.
                    for attempt in 0..<5 {
                        do {
                            _ = try await ring.rotate(record.keyId)
                            return attempt
                        } catch let error as KMSError where error.code == .serverBusy {
                            try await Task.sleep(for: .milliseconds(200))
                        }
                    }
                    _ = try await ring.rotate(record.keyId)
                    return 5
                }
            }
            return try await group.reduce(0, +)
        }
        // Nothing lost: versions 1...n without a gap, one revision each, all distinct; at most one more
        // than asked for each busy answer.
        let final = try #require(try await store.key(id: record.keyId))
        let count = final.versions.count
        #expect(count >= 41 && count <= 41 + retries, "\(count) versions")
        #expect(final.versions.map(\.version) == Array(1...count))
        #expect(final.revision == count)
        #expect(Set(final.versions.map(\.wrappedMaterial)).count == count)
    }
}
