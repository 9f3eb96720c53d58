public import Foundation
public import KMSProtocol

/// An enrolled client (identity-v1 section 1): a device or job known by its
/// Ed25519 public key, with the grants that say what it may do. Revocation is
/// final and records are never deleted, so the audit log can always name who
/// did what.
public struct ClientRecord: Sendable, Equatable {
    public let clientId: String
    public var name: String
    /// The raw 32-byte Ed25519 public key.
    public let publicKey: Data
    public var grants: [Grant]
    public let createdAt: Date
    public var revokedAt: Date?
    public var accessKeys: [AccessKeyRecord]

    public init(
        clientId: String, name: String, publicKey: Data, grants: [Grant], createdAt: Date, revokedAt: Date? = nil,
        accessKeys: [AccessKeyRecord] = []
    ) {
        self.clientId = clientId
        self.name = name
        self.publicKey = publicKey
        self.grants = grants
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.accessKeys = accessKeys
    }

    /// `SHA256:` + hex of the raw key: the `clientKey` a key exchange names.
    public var fingerprint: String { ClientAuth.fingerprint(rawPublicKey: publicKey) }
    public var isActive: Bool { revokedAt == nil }
    /// Whether this client can manage clients (the last-admin rule counts these).
    public var isAdmin: Bool { isActive && grants.contains { $0.allow.contains(.clientsManage) } }

    /// `cli_` + b64url of 16 random bytes.
    public static func newClientId() -> String {
        "cli_" + Base64.encodeURL(SymmetricKeyBytes.random(count: 16))
    }

    /// `cli_` + 22 b64url characters.
    public static func isClientId(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 26 && text.bytesHave(prefix: "cli_") && bytes[4...].allSatisfy(Self.isURLSafe)
    }

    /// `[a-z0-9][a-z0-9._-]{0,62}`, not starting with `cli_`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 63, !name.bytesHave(prefix: "cli_"), isLowerAlphanumeric(first)
        else {
            return false
        }
        return bytes.allSatisfy {
            isLowerAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
    }

    /// The record as the API returns it (optional members omitted, never `null`).
    public var body: ClientBody {
        ClientBody(
            clientId: clientId, name: name, publicKey: Base64.encode(publicKey), fingerprint: fingerprint,
            grants: grants.map(\.body), createdAt: Timestamp.format(createdAt),
            revokedAt: revokedAt.map(Timestamp.format),
            accessKeys: accessKeys.map {
                ClientBody.AccessKey(
                    accessKeyId: $0.accessKeyId, createdAt: Timestamp.format($0.createdAt),
                    revokedAt: $0.revokedAt.map(Timestamp.format))
            })
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isURLSafe(_ byte: UInt8) -> Bool {
        isLowerAlphanumeric(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "_")
    }
}

/// An access key of a client, for the SigV4 front door: the id is public, the
/// secret is kept wrapped by the master key (SigV4 needs it in the clear to
/// verify) and shown once at creation.
public struct AccessKeyRecord: Sendable, Equatable {
    public let accessKeyId: String
    public let createdAt: Date
    public var revokedAt: Date?
    /// The secret, sealed under the master key with AAD
    /// `kms-v1/secret/access-key/<clientId>/<accessKeyId>`; never returned.
    public let wrappedSecret: Data

    public init(accessKeyId: String, createdAt: Date, revokedAt: Date? = nil, wrappedSecret: Data) {
        self.accessKeyId = accessKeyId
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.wrappedSecret = wrappedSecret
    }

    /// `AKIA` + 16 characters of base32 (RFC 4648: A–Z, 2–7).
    public static func isAccessKeyId(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 20 && text.bytesHave(prefix: "AKIA")
            && bytes[4...].allSatisfy {
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                    || (UInt8(ascii: "2")...UInt8(ascii: "7")).contains($0)
            }
    }
}
