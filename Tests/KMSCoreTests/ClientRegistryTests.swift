import Crypto
import Foundation
import KMSCore
import KMSProtocol
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
        let revoked = try await registry.revoke("phone")
        #expect(revoked.revokedAt != nil && revoked.accessKeys.allSatisfy { $0.revokedAt != nil })
        #expect(try await registry.revoke(phone.clientId) == revoked)
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

    @Test func accessKeyLimitsAndRevocation() async throws {
        _ = try await registry.add(name: "nas", publicKey: Self.publicKey(), grants: [])
        let first = try await registry.createAccessKey("nas")
        _ = try await registry.createAccessKey("nas")
        await #expect(throws: KMSError(.limitReached, "")) { _ = try await registry.createAccessKey("nas") }
        let revoked = try await registry.revokeAccessKey("nas", accessKeyId: first.accessKeyId)
        #expect(revoked.accessKeys.first?.revokedAt != nil)
        #expect(try await registry.revokeAccessKey("nas", accessKeyId: first.accessKeyId) == revoked)
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
        #expect(try await registry.revoke("admin").revokedAt != nil)
    }
}
