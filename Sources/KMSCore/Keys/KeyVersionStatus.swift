public import Foundation

/// The status of a key version, derived from the clock — never stored as
/// truth — so that every instance agrees without a background job.
public enum KeyVersionStatus: String, Sendable, Codable {
    /// The one version that encrypts (and decrypts).
    case active
    /// Rotated out; decrypts until `graceUntil`.
    case grace
    /// Past grace: decrypt and rewrap refused; material kept.
    case retired
}

/// Grace-period arithmetic in one place.
public struct KeyLifecycle: Sendable {
    /// `KMS_KEY_GRACE_MS`, read at every decision: raising it extends grace for
    /// versions already rotated out.
    public let graceMs: Int64
    /// Encryptions under a version after which the scheduler rotates the key
    /// (`KeyRing.recordUsage`): 2^31, half of what random 96-bit nonces allow
    /// under one key, leaving room for counts a crash lost (at most a pass's
    /// worth per instance).
    public let rotateAfterEncryptions: UInt64
    /// Versions a key may have; a rotation past them is `409 limit_reached`. Every rotation
    /// rewrites the key's record with all its versions and every metadata answer lists them: a
    /// script rotating in a loop made each rotation cost more (26 ms at 1,000 versions, 87 ms at
    /// 8,000, in a debug build), and a key's sealed metadata grows by about 150 bytes a version
    /// (1.2 MB at 8,001), past what a client reads (4 MB) at about 28,000. 10,000 is a daily rotation for 27 years; AWS KMS allows a key far fewer
    /// rotations on demand.
    public let maxVersions: Int
    /// The highest `maxVersions` there is (an operator may lower it, `KMS_KEY_MAX_VERSIONS`).
    public static let versionCeiling = 10_000
    /// Versions a page of `KeyRing.list` may carry past its first key: one full key's at the
    /// ceiling, whatever `maxVersions` is (a review: bounded by a lowered `maxVersions` of 2, a
    /// page held one or two keys and listing N keys read about 100 N records).
    public let pageVersions: Int
    /// Keys the store may hold (`KMS_MAX_KEYS`); a generate past them is `409 limit_reached`; nil: no
    /// limit (the library's default). A client with `keys:create` could otherwise grow the store, its
    /// memory, its backups and every listing without end (a review made 6,719 keys of the largest labels,
    /// 149 MB, and a backup took 113 s).
    public let maxKeys: Int?

    public init(
        graceMs: Int64, rotateAfterEncryptions: UInt64 = 1 << 31, maxVersions: Int = Self.versionCeiling,
        pageVersions: Int = Self.versionCeiling, maxKeys: Int? = nil
    ) {
        self.maxKeys = maxKeys
        self.graceMs = graceMs
        self.rotateAfterEncryptions = rotateAfterEncryptions
        self.maxVersions = maxVersions
        self.pageVersions = pageVersions
    }

    public func graceUntil(_ record: KeyRecord, version: Int) -> Date? {
        record.deactivatedAt(version)?.addingMilliseconds(graceMs)
    }

    /// Retired exactly at `graceUntil`.
    public func status(_ record: KeyRecord, version: Int, now: Date) -> KeyVersionStatus {
        guard let until = graceUntil(record, version: version) else { return .active }
        return now < until ? .grace : .retired
    }
}
