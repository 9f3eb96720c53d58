public import Foundation

/// One version of a managed key: 32 bytes of AES-256 material, stored only
/// wrapped by the master key (AAD binds key id and version).
public struct KeyVersion: Sendable, Equatable {
    public let version: Int
    public let createdAt: Date
    /// `nonce || ciphertext || tag` of the material under the master key.
    public let wrappedMaterial: Data

    public init(version: Int, createdAt: Date, wrappedMaterial: Data) {
        self.version = version
        self.createdAt = createdAt
        self.wrappedMaterial = wrappedMaterial
    }
}

/// lifecycle-v1 section 1: whether a key may be used.
public enum KeyState: String, Sendable, Equatable, CaseIterable {
    /// New keys; every operation allowed.
    case enabled
    /// The brake: every crypto operation and rotation refused (`409 key_disabled`), metadata readable.
    case disabled
    /// Waiting for `deletionDate`, when the scheduler deletes it for good (`409 key_pending_deletion`).
    case pendingDeletion = "pending_deletion"
}

/// A managed key and all its versions. Versions are never deleted: a retired
/// version's material is kept so that an operator can rescue old data by
/// raising `KMS_KEY_GRACE_MS`.
public struct KeyRecord: Sendable, Equatable {
    public let keyId: String
    /// The key's aliases, sorted by bytes. Aliases are their own records
    /// (lifecycle-v1 section 3): stores fill this in on every read, `create`
    /// claims them with the key, and `update` ignores it.
    public var aliases: [String]
    public let createdAt: Date
    /// Versions 1...n in order; the last one is active.
    public internal(set) var versions: [KeyVersion]
    /// Bumped by every update; stores compare-and-set on it.
    public var revision: Int
    public var state: KeyState = .enabled
    /// When a `pending_deletion` key is deleted for good.
    public var deletionDate: Date?
    public var pendingWindowDays: Int?
    /// Automatic rotation (lifecycle-v1 section 2); nil: none.
    public var rotationPeriodDays: Int?
    public var nextRotationAt: Date?
    public var description: String = ""
    public var tags: [String: String] = [:]

    /// The bytes of its description, tags and aliases as JSON writes them (a quote, a backslash or a line
    /// break twice, another control character six times: the final review filled labels with quotes):
    /// what a listing page counts besides versions.
    var labelBytes: Int {
        func written(_ text: String) -> Int {
            text.utf8.reduce(0) { total, byte in
                switch byte {
                case 0x22, 0x5C, 0x08, 0x09, 0x0A, 0x0C, 0x0D: total + 2
                case 0..<0x20: total + 6
                default: total + 1
                }
            }
        }
        return written(description) + tags.reduce(0) { $0 + written($1.key) + written($1.value) }
            + aliases.reduce(0) { $0 + $1.utf8.count }
    }
    /// aws-kms-v1's stored key policy (JSON text, kept as given; grants decide).
    public var policy: String?

    public init(keyId: String, aliases: [String], createdAt: Date, versions: [KeyVersion], revision: Int = 1) {
        self.keyId = keyId
        self.aliases = aliases.sorted { $0.bytesPrecede($1) }
        self.createdAt = createdAt
        self.versions = versions
        self.revision = revision
    }

    public init(keyId: String, alias: String?, createdAt: Date, versions: [KeyVersion], revision: Int = 1) {
        self.init(
            keyId: keyId, aliases: alias.map { [$0] } ?? [], createdAt: createdAt, versions: versions,
            revision: revision)
    }

    /// The first alias (api-v1's single `alias`), nil when the key has none.
    public var alias: String? { aliases.first }

    public var activeVersion: Int { versions.count }

    public func version(_ number: Int) -> KeyVersion? {
        guard number >= 1, number <= versions.count else { return nil }
        return versions[number - 1]
    }

    /// When `number` stopped being active (the next version's creation), nil while active.
    public func deactivatedAt(_ number: Int) -> Date? {
        guard number >= 1, number < versions.count else { return nil }
        return versions[number].createdAt
    }

    /// Whether the scheduler should delete it at `now`.
    public func isDueForDeletion(at now: Date) -> Bool {
        state == .pendingDeletion && (deletionDate.map { $0 <= now } ?? false)
    }

    /// Whether the scheduler should rotate it at `now` (disabled keys wait).
    public func isDueForRotation(at now: Date) -> Bool {
        state == .enabled && rotationPeriodDays != nil && (nextRotationAt.map { $0 <= now } ?? false)
    }

    /// The same key with its lifecycle members but not its aliases: what a
    /// store compares when it checks that an update did not change aliases.
    public func withAliases(_ aliases: [String]) -> KeyRecord {
        var copy = self
        copy.aliases = aliases.sorted { $0.bytesPrecede($1) }
        return copy
    }
}

/// An alias record (lifecycle-v1 section 3): one name for one key id.
public struct AliasRecord: Sendable, Equatable {
    public let alias: String
    public var keyId: String
    public let createdAt: Date
    public var updatedAt: Date

    public init(alias: String, keyId: String, createdAt: Date, updatedAt: Date) {
        self.alias = alias
        self.keyId = keyId
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
