import Foundation

/// Where managed keys live.
///
/// Contract, checked by the conformance suite for every implementation:
/// - `create` throws `alias_in_use` when the alias names another key, and an
///   internal error when the key id exists (ids are random; a clash is a bug).
/// - `update` is compare-and-set: it succeeds only when the stored revision
///   equals `expectedRevision`, stores the record with revision + 1 and
///   returns `.updated` with it; otherwise it returns `.conflict` and stores
///   nothing. (A lost race is an outcome, not an error.)
///   That is what keeps concurrent rotations from losing a version.
/// - `list` is sorted by key id; `after` is exclusive.
/// - A write has reached stable storage when the call returns.
public protocol KeyStore: Sendable {
    func create(_ record: KeyRecord) async throws(KMSError)
    func key(id: String) async throws(KMSError) -> KeyRecord?
    func key(alias: String) async throws(KMSError) -> KeyRecord?
    func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate
    func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord]
    func count() async throws(KMSError) -> Int
}

/// The outcome of a compare-and-set `KeyStore.update`.
public enum KeyUpdate: Sendable, Equatable {
    /// Stored, with its new revision.
    case updated(KeyRecord)
    /// The stored revision was not the expected one; nothing was stored.
    case conflict
}

extension KMSError {
    /// Compare-and-set kept losing races (the caller retried and gave up).
    public static let keyStoreConflict = KMSError(
        .serverBusy, "the key changed concurrently; retry", retryAfterSeconds: 1, detail: "key store conflict")

    public static func aliasInUse(_ alias: String) -> KMSError {
        KMSError(.aliasInUse, "the alias '\(alias)' already names another key; choose another", field: "alias")
    }
}
