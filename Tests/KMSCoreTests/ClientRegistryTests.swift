import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Logging
import Synchronization
import Testing

/// identity-v1 sections 1, 5 and 6 over a client store: sealed records,
/// hints checked, idempotent revokes, access keys, the bootstrap admin.
@Suite struct ClientRegistryTests {
    let store = LocalClientStore()
    let registry: ClientRegistry

    init() throws {
        registry = ClientRegistry(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 7, count: 32)), clock: SystemClock())
    }

    static func publicKey() -> Data { Curve25519.Signing.PrivateKey().publicKey.rawRepresentation }

    @Test func bootstrapThenEnrolAndLookUp() async throws {
        #expect(try await registry.isEmpty())
        let admin = try #require(try await registry.bootstrapAdmin(publicKey: Self.publicKey()))
        #expect(admin.name == "admin" && admin.grants == [.everything] && admin.isAdmin)
        #expect(try await registry.bootstrapAdmin(publicKey: Self.publicKey()) == nil)
        let grants = [Grant(keys: [.alias("photos")], allow: [.cryptoEncrypt])]
        let phone = try await registry.add(name: "phone", publicKey: Self.publicKey(), grants: grants)
        #expect(try await registry.activeClient(fingerprint: phone.fingerprint) == phone)
        #expect(try await registry.activeClient(id: phone.clientId) == phone)
        #expect(try await registry.resolve("phone").record == phone)
        #expect(try await registry.resolve(phone.clientId).record == phone)
        await #expect(throws: KMSError.self) { _ = try await registry.resolve("Not A Name") }
        let listed = try await registry.list(after: nil, limit: 10)
        #expect(Set(listed.map(\.clientId)) == [admin.clientId, phone.clientId])
        // The sealed record holds no plaintext secret and the API shape no wrapped one.
        let stored = try #require(try await store.client(id: phone.clientId))
        #expect(!String(decoding: stored.sealed, as: UTF8.self).contains("phone"))
    }

    @Test func aTamperedHintCountsAsRevoked() async throws {
        let phone = try await registry.add(name: "phone", publicKey: Self.publicKey(), grants: [])
        var stored = try #require(try await store.client(id: phone.clientId))
        stored.admin = true  // a database writer promoting a client
        _ = try await store.update(stored, expectedRevision: stored.revision)
        #expect(try await registry.activeClient(id: phone.clientId) == nil)
        #expect(try await registry.activeClient(fingerprint: phone.fingerprint) == nil)
    }

    @Test func revokeIsFinalAndIdempotent() async throws {
        _ = try await registry.bootstrapAdmin(publicKey: Self.publicKey())
        let phone = try await registry.add(name: "phone", publicKey: Self.publicKey(), grants: [])
        let created = try await registry.createAccessKey("phone")
        #expect(AccessKeyRecord.isAccessKeyId(created.accessKeyId))
        #expect(Base64.decodeStrict(created.secret)?.count == 30)
        let (revoked, written) = try await registry.revoke("phone")
        #expect(written && revoked.revokedAt != nil && revoked.accessKeys.allSatisfy { $0.revokedAt != nil })
        // Again: nothing written, and the record as it was.
        let again = try await registry.revoke(phone.clientId)
        #expect(again.record == revoked && !again.written)
        // By name a revoked client no longer resolves.
        await #expect(throws: KMSError(.clientNotFound, "")) { _ = try await registry.revoke("phone") }
        await #expect(throws: KMSError(.clientRevoked, "")) { _ = try await registry.setGrants(phone.clientId, []) }
        await #expect(throws: KMSError(.clientRevoked, "")) { _ = try await registry.createAccessKey(phone.clientId) }
        #expect(try await registry.activeClient(fingerprint: phone.fingerprint) == nil)
        // The name is free again; the key never is.
        _ = try await registry.add(name: "phone", publicKey: Self.publicKey(), grants: [])
        await #expect(throws: KMSError.publicKeyInUse) {
            _ = try await registry.add(name: "tablet", publicKey: phone.publicKey, grants: [])
        }
    }

    /// The same grants write nothing; the same ones reordered are a change (identity-v1 section 10 keeps a
    /// stored list in the order given).
    @Test func onlyTheSameGrantsAreNoChange() async throws {
        let one = Grant(keys: [.any], allow: [.cryptoEncrypt])
        let two = Grant(keys: [.alias("photos")], allow: [.keysRead])
        _ = try await registry.add(name: "nas", publicKey: Self.publicKey(), grants: [one, two])
        #expect(!(try await registry.setGrants("nas", [one, two]).written))
        let reordered = try await registry.setGrants("nas", [two, one])
        #expect(reordered.written && reordered.record.grants == [two, one])
    }

    @Test func accessKeyLimitsAndRevocation() async throws {
        _ = try await registry.add(name: "nas", publicKey: Self.publicKey(), grants: [])
        let first = try await registry.createAccessKey("nas")
        _ = try await registry.createAccessKey("nas")
        await #expect(throws: KMSError(.limitReached, "")) { _ = try await registry.createAccessKey("nas") }
        let revoked = try await registry.revokeAccessKey("nas", accessKeyId: first.accessKeyId)
        #expect(revoked.written && revoked.record.accessKeys.first?.revokedAt != nil)
        let again = try await registry.revokeAccessKey("nas", accessKeyId: first.accessKeyId)
        #expect(again.record == revoked.record && !again.written)
        await #expect(throws: KMSError(.accessKeyNotFound, "")) {
            _ = try await registry.revokeAccessKey("nas", accessKeyId: "AKIAAAAAAAAAAAAAAAAA")
        }
        #expect(try await store.client(accessKeyId: first.accessKeyId) == nil)
        _ = try await registry.createAccessKey("nas")
    }

    @Test func theLastAdminCannotLoseClientsManage() async throws {
        let admin = try #require(try await registry.bootstrapAdmin(publicKey: Self.publicKey()))
        await #expect(throws: KMSError.lastAdmin) { _ = try await registry.setGrants("admin", []) }
        await #expect(throws: KMSError.lastAdmin) { _ = try await registry.revoke(admin.clientId) }
        _ = try await registry.add(name: "me", publicKey: Self.publicKey(), grants: [.everything])
        #expect(try await registry.revoke("admin").record.revokedAt != nil)
    }
}

/// Review findings on races the stores' own tests cannot stage: a store that
/// lets a test act at the moment another instance would.
@Suite struct ClientRegistryRaceTests {
    typealias Race = @Sendable (LocalClientStore, StoredClient) async throws -> Void

    /// A client store whose next `add(onlyIfEmpty: true)` or next `update`, once armed, runs a race
    /// against the real store and then loses, as a call does when another instance got there first.
    final class RacingStore: ClientStore {
        let inner = LocalClientStore()
        private let races = Mutex<(add: Race?, update: Race?)>((nil, nil))

        func arm(add: Race? = nil, update: Race? = nil) { races.withLock { $0 = (add, update) } }

        func client(id: String) async throws(KMSError) -> StoredClient? { try await inner.client(id: id) }
        func client(name: String) async throws(KMSError) -> StoredClient? { try await inner.client(name: name) }
        func client(fingerprint: String) async throws(KMSError) -> StoredClient? {
            try await inner.client(fingerprint: fingerprint)
        }
        func client(accessKeyId: String) async throws(KMSError) -> StoredClient? {
            try await inner.client(accessKeyId: accessKeyId)
        }
        func list(after: String?, limit: Int) async throws(KMSError) -> [StoredClient] {
            try await inner.list(after: after, limit: limit)
        }
        func add(_ client: StoredClient, onlyIfEmpty: Bool) async throws(KMSError) -> Bool {
            let race = races.withLock { races in
                defer { races.add = nil }
                return onlyIfEmpty ? races.add : nil
            }
            guard let race else { return try await inner.add(client, onlyIfEmpty: onlyIfEmpty) }
            do { try await race(inner, client) } catch { throw KMSError.internal("\(error)") }
            return false
        }
        func update(_ client: StoredClient, expectedRevision: Int) async throws(KMSError) -> ClientUpdate {
            let race = races.withLock { races in
                defer { races.update = nil }
                return races.update
            }
            guard let race else { return try await inner.update(client, expectedRevision: expectedRevision) }
            do { try await race(inner, client) } catch { throw KMSError.internal("\(error)") }
            return .conflict
        }
    }

    static func registry(_ store: any ClientStore) throws -> ClientRegistry {
        ClientRegistry(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 7, count: 32)), clock: SystemClock())
    }

    /// A key file path in a folder of its own, and a cleanup for it.
    static func keyFile() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("kms-bootstrap-\(UUID().uuidString)")
            .appendingPathComponent("admin.key")
    }

    /// Two instances sharing one key file start together: A writes the file, B reads it and wins
    /// the enrolment with that key. A, losing, removed the file: the only admin's key was gone.
    @Test func aLoserKeepsTheKeyFileTheWinnerEnrolled() async throws {
        let store = RacingStore()
        store.arm(add: { inner, admin in try await inner.add(admin, onlyIfEmpty: false) })
        let file = Self.keyFile()
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let logger = Logger(label: "test")
        #expect(try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: file, logger: logger) == nil)
        let key = try #require(try AdminBootstrap.read(file, logger: logger))
        let enrolled = try #require(try await store.inner.list(after: nil, limit: 10).first)
        #expect(enrolled.fingerprint == ClientAuth.fingerprint(rawPublicKey: key.publicKey.rawRepresentation))
    }

    /// The case the rule was written for still holds: a loser whose key nobody enrolled removes its file.
    @Test func aLoserRemovesAKeyFileNobodyEnrolled() async throws {
        let other = LocalClientStore()
        let winner = try #require(
            try await Self.registry(other).bootstrapAdmin(publicKey: ClientRegistryTests.publicKey()))
        let winnerRow = try #require(try await other.client(id: winner.clientId))
        let store = RacingStore()
        store.arm(add: { inner, _ in try await inner.add(winnerRow, onlyIfEmpty: false) })
        let file = Self.keyFile()
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let logger = Logger(label: "test")
        #expect(try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: file, logger: logger) == nil)
        #expect(!FileManager.default.fileExists(atPath: file.path))
    }

    /// A review planted an admin key owned by another uid (linked into the data folder) before the first
    /// start and was enrolled as admin. Another user's key file is refused, nothing enrolled, as are one
    /// others may read and a link another user owns; this user's own is taken and said to be
    /// (`existingFile`), and a key this start makes is `generated`.
    @Test(.enabled(if: geteuid() == 0, "chown to another user needs root"))
    func anAdminKeyFileAnotherUserOwnsIsNotEnrolled() async throws {
        let logger = Logger(label: "test")
        let file = Self.keyFile()
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        try FileManager.default.createDirectory(
            at: file.deletingLastPathComponent(), withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let planted = Curve25519.Signing.PrivateKey()
        try Data(ClientKeyFile.pem(planted).utf8).write(to: file)
        #expect(chmod(file.path, 0o600) == 0 && chown(file.path, 1234, 1234) == 0)
        let store = LocalClientStore()
        await #expect {
            try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: file, logger: logger)
        } throws: { error in
            let failure = error as? StartupFailure
            return failure?.isConfiguration == true && failure?.description.contains("belongs to uid 1234") == true
        }
        #expect(try await store.list(after: nil, limit: 10).isEmpty)
        // Through a link too: the owner is the target's.
        let link = file.deletingLastPathComponent().appendingPathComponent("linked.key")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: file)
        await #expect(throws: StartupFailure.self) {
            try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: link, logger: logger)
        }
        // A file others may read, and a link another user owns (to this user's own file), are refused too.
        #expect(chown(file.path, geteuid(), getegid()) == 0 && chmod(file.path, 0o644) == 0)
        await #expect {
            try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: file, logger: logger)
        } throws: { error in (error as? StartupFailure)?.description.contains("is mode 644") == true }
        #expect(chmod(file.path, 0o600) == 0 && lchown(link.path, 1234, 1234) == 0)
        await #expect {
            try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: link, logger: logger)
        } throws: { error in (error as? StartupFailure)?.description.contains("is a link that uid 1234 owns") == true }
        #expect(try await store.list(after: nil, limit: 10).isEmpty)
        // This user's own file is enrolled, marked as found, not made.
        let taken = try #require(
            try await AdminBootstrap.run(registry: try Self.registry(store), keyFile: file, logger: logger))
        #expect(taken.keySource == .existingFile && taken.record.publicKey == planted.publicKey.rawRepresentation)
        let fresh = Self.keyFile()
        defer { try? FileManager.default.removeItem(at: fresh.deletingLastPathComponent()) }
        let made = try #require(
            try await AdminBootstrap.run(
                registry: try Self.registry(LocalClientStore()), keyFile: fresh, logger: logger))
        #expect(made.keySource == .generated)
    }

    /// A change by name lost its compare-and-set to another admin, who revoked that client and
    /// enrolled a new one under the same name; the retry looked the name up again and changed
    /// the new client. Retries now follow the clientId first resolved.
    @Test func aRetryKeepsTheClientFirstResolved() async throws {
        let store = RacingStore()
        let registry = try Self.registry(store)
        _ = try await registry.bootstrapAdmin(publicKey: ClientRegistryTests.publicKey())
        let replaceLaptop: Race = { inner, _ in
            let other = try Self.registry(inner)
            _ = try await other.revoke("laptop")
            _ = try await other.add(name: "laptop", publicKey: ClientRegistryTests.publicKey(), grants: [])
        }
        let first = try await registry.add(name: "laptop", publicKey: ClientRegistryTests.publicKey(), grants: [])
        store.arm(update: replaceLaptop)
        let (revoked, _) = try await registry.revoke("laptop")
        #expect(revoked.clientId == first.clientId && revoked.revokedAt != nil)
        let second = try await registry.resolve("laptop").record
        #expect(second.clientId != first.clientId && second.isActive)
        // Grants meant for the second go nowhere once it, too, is replaced: 409 client_revoked.
        store.arm(update: replaceLaptop)
        await #expect(throws: KMSError(.clientRevoked, "")) {
            _ = try await registry.setGrants("laptop", [Grant(keys: [.any], allow: [.cryptoEncrypt])])
        }
        #expect(try await registry.resolve("laptop").record.grants.isEmpty)
    }
}
