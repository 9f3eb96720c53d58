import Foundation
import KMSCore

/// A test key store that forwards every call to an in-memory store: a
/// double conforms to it and writes only the calls it changes (a write that
/// fails, a race staged at the right moment). Shared by the core's and the server's tests.
public protocol ForwardingKeyStore: KeyStore {
    var inner: InMemoryKeyStore { get }
}

extension ForwardingKeyStore {
    public func create(_ record: KeyRecord) async throws(KMSError) { try await inner.create(record) }
    public func key(id: String) async throws(KMSError) -> KeyRecord? { try await inner.key(id: id) }
    public func key(alias: String) async throws(KMSError) -> KeyRecord? { try await inner.key(alias: alias) }
    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try await inner.update(record, expectedRevision: expectedRevision)
    }
    public func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
        try await inner.delete(keyId: keyId, expectedRevision: expectedRevision, now: now)
    }
    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        try await inner.list(after: after, limit: limit)
    }
    public func count() async throws(KMSError) -> Int { try await inner.count() }
    public func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey] {
        try await inner.due(now: now, limit: limit)
    }
    public func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]] {
        try await inner.addEncryptions(counts)
    }
    public func alias(_ name: String) async throws(KMSError) -> AliasRecord? { try await inner.alias(name) }
    public func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError) {
        try await inner.createAlias(record, copying: copying)
    }
    public func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date) async throws(KMSError)
        -> Bool
    {
        try await inner.moveAlias(alias, expectedKeyId: expectedKeyId, to: keyId, at: now)
    }
    public func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool {
        try await inner.deleteAlias(alias, expectedKeyId: expectedKeyId)
    }
    public func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord] {
        try await inner.listAliases(after: after, limit: limit, keyId: keyId)
    }
}
