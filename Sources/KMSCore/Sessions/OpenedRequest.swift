import Crypto
public import Foundation
public import KMSProtocol

/// A protected request whose envelope authenticated (protocol v1 section 4,
/// steps 2 to 5), not yet admitted: the seq has not been recorded.
///
/// From here on every answer to the request, success or error, is sealed
/// under the session key and echoes the seq (section 5): this value is what
/// can seal it, so no caller ever rebuilds one to answer an error.
public struct AuthenticatedRequest: Sendable, CustomStringConvertible, CustomReflectable {
    public let sessionId: String
    /// The token the request presented (rotation moves the session from it).
    public let tokenHash: TokenHash
    /// Reachable only through `seal`.
    private let key: SymmetricKey
    public let seq: UInt64
    /// Where the envelope travelled; a header-carried one seals the empty string.
    public let placement: EnvelopePlacement
    /// The inner request bytes (empty for GET and DELETE).
    public let plaintext: Data
    /// The client the session belongs to (nil: made with `KMS_CLIENT_AUTH=off`).
    public let clientId: String?

    init(
        sessionId: String, tokenHash: TokenHash, key: SymmetricKey, seq: UInt64, placement: EnvelopePlacement,
        plaintext: Data, clientId: String?
    ) {
        self.clientId = clientId
        self.sessionId = sessionId
        self.tokenHash = tokenHash
        self.key = key
        self.seq = seq
        self.placement = placement
        self.plaintext = plaintext
    }

    /// Never the key or the inner request: they may be secrets.
    public var description: String { "AuthenticatedRequest(seq: \(seq), redacted)" }
    /// `dump` too: Foundation's mirror of a `Data` under 64 bytes lists its bytes (a review).
    public var customMirror: Mirror { Mirror(self, children: ["seq": seq, "key and plaintext": "redacted"]) }

    /// Seals an answer to this request, binding its HTTP status.
    public func seal(_ body: Data, status: Int) throws(KMSError) -> Data {
        do {
            return try EnvelopeCipher.sealResponse(body, key: key, sessionId: sessionId, seq: seq, status: status)
        } catch {
            throw KMSError.internal("AES-GCM sealing failed")
        }
    }
}

/// An authenticated request whose seq was admitted (section 4, step 6): what
/// a controller may see.
public struct OpenedRequest: Sendable, CustomStringConvertible, CustomReflectable {
    public let request: AuthenticatedRequest
    /// The session's expiry after this request slid it.
    public let expiresAt: Date
    /// The session's client as read after the seq was admitted (identity-v1
    /// section 3: never a copy from the key exchange); nil with auth off.
    public let client: ClientRecord?

    public var sessionId: String { request.sessionId }
    public var tokenHash: TokenHash { request.tokenHash }
    public var seq: UInt64 { request.seq }
    public var plaintext: Data { request.plaintext }

    public var description: String { "OpenedRequest(seq: \(seq), redacted)" }
    public var customMirror: Mirror { Mirror(self, children: ["seq": seq, "request": "redacted"]) }
}

/// A protected request's envelope as it arrived, where its placement says.
public enum EnvelopeCarrier: Sendable {
    /// POST: the request body.
    case body(Data)
    /// GET and DELETE: the `X-KMS-Envelope` header, b64 of the envelope JSON.
    case header(String?)

    var placement: EnvelopePlacement {
        switch self {
        case .body: return .body
        case .header: return .header
        }
    }
}
