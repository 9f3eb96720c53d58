public import Crypto
public import Foundation
public import KMSProtocol

/// A protected request whose envelope authenticated: what a controller may see.
///
/// Everything after this point answers with a sealed response under `key`,
/// echoing `seq`, errors included (protocol v1 section 5).
public struct OpenedRequest: Sendable {
    public let sessionId: String
    /// The token the request presented (rotation moves the session from it).
    public let tokenHash: TokenHash
    public let key: SymmetricKey
    public let seq: UInt64
    /// The inner request bytes (empty for GET and DELETE).
    public let plaintext: Data
    /// The session's expiry after this request slid it.
    public internal(set) var expiresAt: Date

    public init(
        sessionId: String, tokenHash: TokenHash, key: SymmetricKey, seq: UInt64, plaintext: Data, expiresAt: Date
    ) {
        self.sessionId = sessionId
        self.tokenHash = tokenHash
        self.key = key
        self.seq = seq
        self.plaintext = plaintext
        self.expiresAt = expiresAt
    }
}

/// Where a protected request carries its envelope (protocol v1 section 9).
public enum EnvelopeCarrier: Sendable {
    /// POST: the request body.
    case body(Data)
    /// GET and DELETE: the `X-KMS-Envelope` header, b64 of the envelope JSON.
    case header(String?)
}
