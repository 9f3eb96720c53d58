import Foundation
import KMSCore

/// A test key store that forwards every call to an in-memory store: a
/// double conforms to it and writes only the calls it changes (a write that
/// fails, a race staged at the right moment).
protocol ForwardingKeyStore: KeyStore {
    var inner: InMemoryKeyStore { get }
}

extension ForwardingKeyStore {
    func create(_ record: KeyRecord) async throws(KMSError) { try await inner.create(record) }
    func key(id: String) async throws(KMSError) -> KeyRecord? { try await inner.key(id: id) }
    func key(alias: String) async throws(KMSError) -> KeyRecord? { try await inner.key(alias: alias) }
    func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try await inner.update(record, expectedRevision: expectedRevision)
    }
    func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
        try await inner.delete(keyId: keyId, expectedRevision: expectedRevision, now: now)
    }
    func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        try await inner.list(after: after, limit: limit)
    }
    func count() async throws(KMSError) -> Int { try await inner.count() }
    func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey] { try await inner.due(now: now, limit: limit) }
    func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]] {
        try await inner.addEncryptions(counts)
    }
    func alias(_ name: String) async throws(KMSError) -> AliasRecord? { try await inner.alias(name) }
    func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError) {
        try await inner.createAlias(record, copying: copying)
    }
    func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date) async throws(KMSError)
        -> Bool
    {
        try await inner.moveAlias(alias, expectedKeyId: expectedKeyId, to: keyId, at: now)
    }
    func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool {
        try await inner.deleteAlias(alias, expectedKeyId: expectedKeyId)
    }
    func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord] {
        try await inner.listAliases(after: after, limit: limit, keyId: keyId)
    }
}
