public import Crypto
public import Foundation
public import KMSProtocol

/// A session between `GET /session/init` and the key exchange.
public struct PendingSession: Sendable, Equatable {
    public let id: String
    /// The client address that asked for it (for the per-address bound).
    public let clientAddress: String
    public let expiresAt: Date

    public init(id: String, clientAddress: String, expiresAt: Date) {
        self.id = id
        self.clientAddress = clientAddress
        self.expiresAt = expiresAt
    }
}

/// A live session: the binding of protocol v1 section 3, plus its replay
/// window and rotation history. Holds the session key, so it is neither
/// `Encodable` nor printable.
public struct SessionRecord: Sendable, CustomStringConvertible {
    public let id: String
    public internal(set) var tokenHash: TokenHash
    public let key: SymmetricKey
    public let createdAt: Date
    public internal(set) var expiresAt: Date
    /// `createdAt + KMS_SESSION_MAX_LIFETIME_MS`: no sliding goes past it.
    public let absoluteExpiry: Date
    public internal(set) var window: ReplayWindow
    /// Times of successful token rotations inside the current rate window.
    public internal(set) var rotations: [Date]
    /// The enrolled client the session belongs to, for life (identity-v1
    /// section 3); nil for a session made with `KMS_CLIENT_AUTH=off`.
    public let clientId: String?

    public init(
        id: String, tokenHash: TokenHash, key: SymmetricKey, createdAt: Date, expiresAt: Date, absoluteExpiry: Date,
        window: ReplayWindow = ReplayWindow(), rotations: [Date] = [], clientId: String? = nil
    ) {
        self.id = id
        self.clientId = clientId
        self.tokenHash = tokenHash
        self.key = key
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.absoluteExpiry = absoluteExpiry
        self.window = window
        self.rotations = rotations
    }

    public func isLive(at now: Date) -> Bool { now < expiresAt }

    public var description: String { "Session(\(id), expires \(Timestamp.format(expiresAt)))" }
}
