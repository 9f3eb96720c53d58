import Foundation

/// `GET /session/init` response (plain JSON).
public struct SessionInitResponse: Codable, Sendable, Equatable {
    /// protocol-v1 section 2's one key-exchange scheme: RSA-OAEP, SHA-256 and MGF1-SHA-256, empty label.
    public static let keyExchangeAlgorithm = "RSA-OAEP-256"

    public var sessionId: String
    public var algorithm: String
    public var publicKey: String
    public var fingerprint: String
    public var expiresAt: String

    public init(sessionId: String, algorithm: String, publicKey: String, fingerprint: String, expiresAt: String) {
        self.sessionId = sessionId
        self.algorithm = algorithm
        self.publicKey = publicKey
        self.fingerprint = fingerprint
        self.expiresAt = expiresAt
    }
}

/// `POST /session/key-exchange` body (plain JSON).
public struct KeyExchangeRequest: Codable, StrictDecodable, Equatable {
    /// The length of `wrappedKey`'s text: b64 of an RSA-4096 ciphertext (512 bytes). Anything else
    /// is refused before it is decoded, with the one unwrap error (the length is public: no oracle).
    public static let wrappedKeyTextLength = (512 + 2) / 3 * 4

    public var sessionId: String
    /// b64 text, kept undecoded: decoding failures must look like every other unwrap failure.
    public var wrappedKey: String
    /// identity-v1: `SHA256:` + hex of the client's raw Ed25519 public key.
    public var clientKey: String?
    /// identity-v1: b64 of the Ed25519 signature over `ClientAuth.transcript`.
    public var signature: String?
    public init(sessionId: String, wrappedKey: String, clientKey: String? = nil, signature: String? = nil) {
        self.sessionId = sessionId
        self.wrappedKey = wrappedKey
        self.clientKey = clientKey
        self.signature = signature
    }

    /// identity-v1 section 7: the `clientKey` a failed exchange sent, from any body that is a JSON object
    /// with that member as a string, whatever else it holds or lacks (a review: a body refused for another
    /// member recorded none). The audit decides how much of it to show.
    public static func sentClientKey(_ body: some Sequence<UInt8>) -> String? {
        guard var reader = try? JSONObjectReader(bytes: body), case .string(let text)? = reader.take("clientKey")
        else { return nil }
        return text
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        sessionId = try reader.string("sessionId")
        wrappedKey = try reader.string("wrappedKey")
        // Of any JSON type here: with KMS_CLIENT_AUTH=off they are accepted and
        // ignored; with `required` the server reads and checks them itself.
        if case .string(let text)? = reader.take("clientKey") { clientKey = text }
        if case .string(let text)? = reader.take("signature") { signature = text }
    }
}

/// Plaintext of the seq-0 sealed response to a key exchange.
public struct KeyExchangeResponse: Codable, Sendable, Equatable {
    public var sessionId: String
    public var expiresAt: String
    public var ttlMs: Int64
    public var sliding: Bool
    public var maxLifetimeMs: Int64

    public init(sessionId: String, expiresAt: String, ttlMs: Int64, sliding: Bool, maxLifetimeMs: Int64) {
        self.sessionId = sessionId
        self.expiresAt = expiresAt
        self.ttlMs = ttlMs
        self.sliding = sliding
        self.maxLifetimeMs = maxLifetimeMs
    }
}

/// `POST /session/rotate-token` inner request: `{}` asks the server for a token.
public struct RotateTokenRequest: Codable, StrictDecodable, Equatable {
    public var token: String?

    public init(token: String? = nil) { self.token = token }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        token = try reader.optionalString("token")
    }
}

/// `POST /session/rotate-token` inner response.
public struct RotateTokenResponse: Codable, Sendable, Equatable {
    public var token: String
    public var expiresAt: String

    public init(token: String, expiresAt: String) {
        self.token = token
        self.expiresAt = expiresAt
    }
}

/// `POST /crypto/random` inner request.
public struct RandomRequest: Codable, StrictDecodable, Equatable {
    public static let range: ClosedRange<Int64> = 1...1024
    public var bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        bytes = Int(try reader.integer("bytes", in: Self.range))
    }
}

/// `POST /crypto/random` inner response.
public struct RandomResponse: Codable, Sendable, Equatable {
    /// b64
    public var random: String

    public init(random: String) { self.random = random }
}

/// `GET /session` (identity-v1 section 3): the session and, with client
/// identity, the client it belongs to as read for this request.
public struct SessionInfoResponse: Codable, Sendable, Equatable {
    public struct Client: Codable, Sendable, Equatable {
        public var clientId: String
        public var name: String
        public var fingerprint: String
        public var grants: [GrantBody]

        public init(clientId: String, name: String, fingerprint: String, grants: [GrantBody]) {
            self.clientId = clientId
            self.name = name
            self.fingerprint = fingerprint
            self.grants = grants
        }
    }

    public var sessionId: String
    public var expiresAt: String
    /// Absent with `KMS_CLIENT_AUTH=off`.
    public var client: Client?

    public init(sessionId: String, expiresAt: String, client: Client?) {
        self.sessionId = sessionId
        self.expiresAt = expiresAt
        self.client = client
    }
}

/// The token is a bearer secret: printed or dumped, these show that one is
/// there, never its value (a review).
extension RotateTokenRequest: CustomStringConvertible, CustomReflectable {
    public var description: String { "RotateTokenRequest(token: \(token == nil ? "none" : "redacted"))" }
    public var customMirror: Mirror { Mirror(self, children: ["token": token == nil ? "none" : "redacted"]) }
}

extension RotateTokenResponse: CustomStringConvertible, CustomReflectable {
    public var description: String { "RotateTokenResponse(token: redacted, expiresAt: \(expiresAt))" }
    public var customMirror: Mirror { Mirror(self, children: ["token": "redacted", "expiresAt": expiresAt]) }
}

/// Random bytes are often used as a key: printed or dumped, they are left out.
extension RandomResponse: CustomStringConvertible, CustomReflectable {
    public var description: String { "RandomResponse(random: redacted)" }
    public var customMirror: Mirror { Mirror(self, children: ["random": "redacted"]) }
}
