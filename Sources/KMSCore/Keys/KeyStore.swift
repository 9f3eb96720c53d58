import Foundation

/// Where managed keys and their aliases live.
///
/// Contract, checked by the conformance suite for every implementation:
/// - `create` claims the record's `aliases` with the key, all or nothing: it
///   throws `alias_in_use` when one names another key, and an internal error
///   when the key id exists (ids are random; a clash is a bug).
/// - Every read fills in `aliases`, sorted by bytes.
/// - `update` is compare-and-set: it succeeds only when the stored revision
///   equals `expectedRevision`, stores the record (its `aliases` ignored)
///   with revision + 1 and returns `.updated` with it; otherwise (a changed
///   or deleted key) it returns `.conflict` and stores nothing. (A lost race is an outcome, not an error.)
///   That is what keeps concurrent rotations from losing a version, and two
///   schedulers from rotating one key twice.
/// - `delete` removes a key and its aliases only when its revision is still
///   `expectedRevision` and it is `pending_deletion` with `deletionDate <= now`;
///   it answers whether this call removed it (lifecycle-v1 section 1).
/// - `createAlias` is exclusive (`alias_in_use`); `moveAlias` and
///   `deleteAlias` are compare-and-set on the key the alias names now.
/// - `list` is sorted by key id, `listAliases` by alias bytes; `after` is exclusive.
/// - A write has reached stable storage when the call returns.
public protocol KeyStore: Sendable {
    func create(_ record: KeyRecord) async throws(KMSError)
    func key(id: String) async throws(KMSError) -> KeyRecord?
    func key(alias: String) async throws(KMSError) -> KeyRecord?
    /// `key(id:)` read past any cache of this instance: asked once more when a
    /// record lacks what a request names (a version made a moment ago on
    /// another instance). Stores without a cache answer as `key(id:)`.
    func freshKey(id: String) async throws(KMSError) -> KeyRecord?
    /// `key(alias:)` read past any cache: what a change to a key (its
    /// lifecycle, a rotation, its aliases) decides on, so that it never acts
    /// on a state or an alias another instance changed a moment ago.
    func freshKey(alias: String) async throws(KMSError) -> KeyRecord?
    func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate
    func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool
    /// Up to `limit` records after `after`, in keyId order; fewer only when no more follow (callers read a
    /// short page as the end).
    func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord]
    func count() async throws(KMSError) -> Int
    /// Keys due for deletion or rotation at `now`, at most `limit` (the file
    /// store does not count files it cannot read: they cannot say whether
    /// they are due), sorted by key id. A record that cannot be read (a corrupt file or row) is named
    /// as `.unreadable`, not thrown: one bad record must not stop every other
    /// key's scheduled deletion or rotation.
    func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey]
    /// Adds encryption counts (by key id, then version) and answers the
    /// totals of the versions counted; a key that no longer exists is left
    /// out. Kept beside the records, not in them, so that a record stays
    /// lifecycle-v1's format and an earlier binary still reads it (rolling
    /// upgrades, going back). Totals stop at `UInt64(Int64.max)`.
    func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]]

    func alias(_ name: String) async throws(KMSError) -> AliasRecord?
    /// Claims `record.alias` for `record.keyId`: `alias_in_use` when taken. The key must exist
    /// (`key_not_found`) and not be pending deletion (`key_pending_deletion`) when the alias is
    /// written, judged in the same step (a review: checked only before, a deletion scheduled in
    /// between left a pending key with a new alias). `copying`: a restore's or
    /// migration's copy of an alias that already named the key (a key pending
    /// deletion keeps its aliases), which needs only the key to exist.
    func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError)
    /// Points `alias` at `keyId` if it still names `expectedKeyId`; false otherwise. `keyId`
    /// must exist and not be pending deletion, as for `createAlias` (thrown, not false).
    func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date) async throws(KMSError)
        -> Bool
    /// Removes `alias` if it still names `expectedKeyId`; false otherwise.
    func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool
    func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord]
}

extension KeyStore {
    /// An alias made through the API: the key must be able to take it now.
    public func createAlias(_ record: AliasRecord) async throws(KMSError) {
        try await createAlias(record, copying: false)
    }

    public func freshKey(id: String) async throws(KMSError) -> KeyRecord? { try await key(id: id) }
    public func freshKey(alias: String) async throws(KMSError) -> KeyRecord? { try await key(alias: alias) }
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

    /// A key deleted between a request's lookup and its write.
    public static let keyDeletedMeanwhile = KMSError(.keyNotFound, "the key was deleted")

    /// Why a key may not take an alias now (nil: it may); stores call it where
    /// the write happens. A copy (`copying`) needs only the key to exist.
    public static func refusalToTakeAlias(_ record: KeyRecord?, copying: Bool = false) -> KMSError? {
        guard let record else { return keyDeletedMeanwhile }
        return record.state == .pendingDeletion && !copying ? keyPendingDeletion : nil
    }

    public static func aliasNotFound(_ alias: String) -> KMSError {
        KMSError(.aliasNotFound, "no alias '\(alias)' exists; list them with GET /aliases")
    }

    public static func aliasInUse(_ alias: String) -> KMSError {
        KMSError(.aliasInUse, "the alias '\(alias)' already names another key; choose another", field: "alias")
    }
}

/// A key `KeyStore.due` found: its record, or the error that kept it from
/// being read (the scheduler names the key and goes on with the others).
public enum DueKey: Sendable, Equatable {
    case readable(KeyRecord)
    case unreadable(keyId: String, KMSError)

    public var keyId: String {
        switch self {
        case .readable(let record): record.keyId
        case .unreadable(let keyId, _): keyId
        }
    }
}

extension UInt64 {
    /// `self + other`, stopping at `Int64.max` (what every store can hold).
    func addingEncryptions(_ other: UInt64) -> UInt64 {
        let limit = UInt64(Int64.max)
        return other >= limit || self >= limit - other ? limit : self + other
    }
}
