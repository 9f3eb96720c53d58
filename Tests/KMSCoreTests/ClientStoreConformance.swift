import Foundation
import KMSCore
import KMSPostgres
import KMSTestSupport
import Testing

typealias ClientStoreFactory = StoreFactory<any ClientStore>

extension StoreFactory<any ClientStore> {
    /// In-memory and file always; PostgreSQL when `KMS_TEST_POSTGRES_URL` is set.
    static var all: [ClientStoreFactory] {
        var factories = [
            ClientStoreFactory(name: "in-memory", make: { LocalClientStore() }),
            ClientStoreFactory(name: "file") { try LocalClientStore(folder: temporaryFolder()) },
        ]
        if PostgresTestDatabase.url != nil {
            factories.append(
                ClientStoreFactory(name: "postgres") {
                    PostgresClientStore(database: try await PostgresTestDatabase.fresh())
                })
        }
        return factories
    }
}

func sampleClient(
    _ name: String, admin: Bool = false, active: Bool = true, accessKeys: [String] = [], id: String? = nil
) -> StoredClient {
    StoredClient(
        clientId: id ?? ClientRecord.newClientId(), name: name,
        fingerprint: "SHA256:" + String(repeating: "0", count: 32) + UUID().uuidString.prefix(8).lowercased()
            + String(repeating: "f", count: 24),
        active: active, admin: admin && active, accessKeyIds: accessKeys, sealed: Data("sealed \(name)".utf8))
}

/// The contract of `ClientStore`, checked the same way for every implementation.
@Suite(.shutsDownItsPools) struct ClientStoreConformance {
    @Test(arguments: ClientStoreFactory.all)
    func addAndLookUpByEveryName(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let laptop = sampleClient("laptop", accessKeys: ["AKIAABCDEFGHIJ234567"])
        #expect(try await store.add(laptop, onlyIfEmpty: false))
        var stored = laptop
        stored.revision = 1
        #expect(try await store.client(id: laptop.clientId) == stored)
        #expect(try await store.client(name: "laptop") == stored)
        #expect(try await store.client(fingerprint: laptop.fingerprint) == stored)
        #expect(try await store.client(accessKeyId: "AKIAABCDEFGHIJ234567") == stored)
        #expect(try await store.client(id: ClientRecord.newClientId()) == nil)
        #expect(try await store.client(name: "phone") == nil)
        #expect(try await store.client(accessKeyId: "AKIAABCDEFGHIJ765432") == nil)
    }

    @Test(arguments: ClientStoreFactory.all)
    func uniquenessInTheContractsOrder(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let laptop = sampleClient("laptop")
        try await store.add(laptop, onlyIfEmpty: false)
        // Same name and same key: the name is reported first.
        var twin = sampleClient("laptop")
        twin.fingerprint = laptop.fingerprint
        await #expect(throws: KMSError.nameInUse("laptop")) { try await store.add(twin, onlyIfEmpty: false) }
        twin.name = "phone"
        await #expect(throws: KMSError.publicKeyInUse) { try await store.add(twin, onlyIfEmpty: false) }
        // Revoked: the name is free again, the key never is.
        var revoked = try #require(try await store.client(id: laptop.clientId))
        revoked.active = false
        #expect(try await store.update(revoked, expectedRevision: 1) != .conflict)
        #expect(try await store.client(name: "laptop") == nil)
        let again = sampleClient("laptop")
        #expect(try await store.add(again, onlyIfEmpty: false))
        var reused = sampleClient("other")
        reused.fingerprint = laptop.fingerprint
        await #expect(throws: KMSError.publicKeyInUse) { try await store.add(reused, onlyIfEmpty: false) }
    }

    @Test(arguments: ClientStoreFactory.all)
    func onlyIfEmptyAddsTheFirstClientOnce(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<5 {
                group.addTask {
                    // A busy database (lock_timeout under a loaded machine) says "try again"; a
                    // client does, and the outcome must still be one admin.
                    for _ in 0..<5 {
                        do {
                            return try await store.add(sampleClient("admin-\(index)", admin: true), onlyIfEmpty: true)
                        } catch let error as KMSError where error.code == .serverBusy {
                            try await Task.sleep(for: .milliseconds(200))
                        }
                    }
                    return try await store.add(sampleClient("admin-\(index)", admin: true), onlyIfEmpty: true)
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1, "\(results)")
        #expect(try await store.list(after: nil, limit: 10).count == 1)
    }

    @Test(arguments: ClientStoreFactory.all)
    func updateIsCompareAndSet(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let phone = sampleClient("phone")
        try await store.add(phone, onlyIfEmpty: false)
        var changed = try #require(try await store.client(id: phone.clientId))
        changed.sealed = Data("new grants".utf8)
        guard case .updated(let stored) = try await store.update(changed, expectedRevision: 1) else {
            Issue.record("first update lost")
            return
        }
        #expect(stored.revision == 2 && stored.sealed == changed.sealed)
        #expect(try await store.update(changed, expectedRevision: 1) == .conflict)
        #expect(try await store.client(id: phone.clientId) == stored)
    }

    @Test(arguments: ClientStoreFactory.all)
    func theLastAdminStays(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let first = sampleClient("admin", admin: true)
        let second = sampleClient("root", admin: true)
        try await store.add(first, onlyIfEmpty: false)
        try await store.add(second, onlyIfEmpty: false)
        // Two admins revoke each other at once: exactly one revocation goes through.
        let outcomes = await withTaskGroup(of: String.self) { group in
            for client in [first, second] {
                group.addTask {
                    var revoked = client
                    revoked.revision = 1
                    revoked.active = false
                    revoked.admin = false
                    do {
                        return try await store.update(revoked, expectedRevision: 1) == .conflict
                            ? "conflict" : "revoked"
                    } catch {
                        return (error as? KMSError)?.code.rawValue ?? "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.sorted() == ["last_admin", "revoked"], "\(outcomes)")
        let admins = try await store.list(after: nil, limit: 10).filter(\.admin)
        #expect(admins.count == 1)
    }

    @Test(arguments: ClientStoreFactory.all)
    func listIsByClientIdAndLimited(_ factory: ClientStoreFactory) async throws {
        let store = try await factory.make()
        let ids = ["cli_AAAAAAAAAAAAAAAAAAAAAA", "cli_BAAAAAAAAAAAAAAAAAAAAA", "cli_aAAAAAAAAAAAAAAAAAAAAA"]
        for (index, id) in ids.reversed().enumerated() {
            try await store.add(sampleClient("c\(index)", id: id), onlyIfEmpty: false)
        }
        #expect(try await store.list(after: nil, limit: 10).map(\.clientId) == ids)
        #expect(try await store.list(after: ids[0], limit: 1).map(\.clientId) == [ids[1]])
        #expect(try await store.list(after: ids[2], limit: 10).isEmpty)
    }

    @Test func theFileStoreKeepsItsRecordsDurably() async throws {
        let folder = temporaryFolder()
        let store = try LocalClientStore(folder: folder)
        let laptop = sampleClient("laptop")
        try await store.add(laptop, onlyIfEmpty: false)
        let reopened = try LocalClientStore(folder: folder)
        #expect(try await reopened.client(name: "laptop")?.sealed == laptop.sealed)
        let file = folder.appendingPathComponent("clients.json")
        #expect(DurableFile.mode(of: file) == 0o600 && DurableFile.mode(of: folder) == 0o700)
    }

    @Test func theRecordLimitHolds() async throws {
        let store = LocalClientStore()
        for index in 0..<ClientLimits.activeClients {
            try await store.add(sampleClient("c\(index)"), onlyIfEmpty: false)
        }
        await #expect(throws: KMSError.clientLimitReached) {
            try await store.add(sampleClient("one-more"), onlyIfEmpty: false)
        }
    }
}
