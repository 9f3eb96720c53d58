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

/// A managed key and all its versions. Versions are never deleted: a retired
/// version's material is kept so that an operator can rescue old data by
/// raising `KMS_KEY_GRACE_MS`.
public struct KeyRecord: Sendable, Equatable {
    public let keyId: String
    public let alias: String?
    public let createdAt: Date
    /// Versions 1...n in order; the last one is active.
    public internal(set) var versions: [KeyVersion]
    /// Bumped by every update; stores compare-and-set on it.
    public var revision: Int

    public init(keyId: String, alias: String?, createdAt: Date, versions: [KeyVersion], revision: Int = 1) {
        self.keyId = keyId
        self.alias = alias
        self.createdAt = createdAt
        self.versions = versions
        self.revision = revision
    }

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
}
