import Foundation

/// Where managed keys live.
///
/// Contract, checked by the conformance suite for every implementation:
/// - `create` throws `alias_in_use` when the alias names another key, and an
///   internal error when the key id exists (ids are random; a clash is a bug).
/// - `update` is compare-and-set: it succeeds only when the stored revision
///   equals `expectedRevision`, stores the record with revision + 1 and
///   returns it; otherwise it throws `KeyStoreConflict` and stores nothing.
///   That is what keeps concurrent rotations from losing a version.
/// - `list` is sorted by key id; `after` is exclusive.
/// - A write has reached stable storage when the call returns.
public protocol KeyStore: Sendable {
    func create(_ record: KeyRecord) async throws(KMSError)
    func key(id: String) async throws(KMSError) -> KeyRecord?
    func key(alias: String) async throws(KMSError) -> KeyRecord?
    func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyRecord
    func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord]
    func count() async throws(KMSError) -> Int
}

extension KMSError {
    /// A compare-and-set lost a race; the caller re-reads and retries.
    public static let keyStoreConflict = KMSError(
        .serverBusy, "the key changed concurrently; retry", retryAfterSeconds: 1, detail: "key store conflict")

    public static func aliasInUse(_ alias: String) -> KMSError {
        KMSError(.aliasInUse, "the alias '\(alias)' already names another key; choose another", field: "alias")
    }
}
