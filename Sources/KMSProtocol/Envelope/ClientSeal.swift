public import Crypto
import CryptoExtras
public import Foundation
import Synchronization

/// The client side of the protocol's cryptography: wrapping a session key to
/// the server's identity key, sealing requests and opening responses.
///
/// Shared by the Swift client and the tests, so both speak exactly what the
/// server expects (and the server's own test vectors pin the bytes).
public enum ClientSeal {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// A server's identity key, parsed once. A client connects to the same
    /// server again and again (a new session, a reconnect, a bench): parsing
    /// its PEM twice per key exchange, and setting up BoringSSL's Montgomery
    /// context for a new key object each time, was a fifth of the client's
    /// work in one (issue 18). Public data only: nothing secret is kept.
    ///
    /// `@unchecked`: swift-crypto's `_RSA.Encryption.PublicKey` is not marked
    /// `Sendable`, but it is immutable and its storage (`BoringSSLRSAPublicKey`)
    /// is declared `Sendable` by swift-crypto; BoringSSL's public-key
    /// operations lock what they set up lazily, so one key serves many threads.
    public struct ServerKey: @unchecked Sendable {
        public let pem: String
        /// `SHA256:` + hex of the SubjectPublicKeyInfo DER (protocol-v1).
        public let fingerprint: String
        let key: _RSA.Encryption.PublicKey

        public init(pem: String) throws(Failure) {
            do {
                key = try _RSA.Encryption.PublicKey(unsafePEMRepresentation: pem)
            } catch {
                throw Failure(description: "the server's public key is not a valid RSA public key")
            }
            self.pem = pem
            fingerprint = Fingerprint.of(spkiDER: key.derRepresentation)
        }

        /// RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label) of the session key, as b64.
        public func wrap(_ sessionKey: SymmetricKey) throws(Failure) -> String {
            guard key.keySizeInBits == 4096 else { throw Failure(description: "the server key is not RSA-4096") }
            do {
                return Base64.encode(
                    try sessionKey.withUnsafeBytes { try key.encrypt(Data($0), padding: .PKCS1_OAEP_SHA256) })
            } catch {
                throw Failure(description: "the server's public key is not a usable RSA public key")
            }
        }
    }

    /// The last server key parsed in this process: most processes talk to one server.
    private static let lastServerKey = Mutex<ServerKey?>(nil)

    /// `ServerKey(pem:)`, reusing the last one parsed when the text is the same.
    public static func serverKey(pem: String) throws(Failure) -> ServerKey {
        if let known = lastServerKey.withLock({ $0 }), known.pem.bytesEqual(pem) { return known }
        let parsed = try ServerKey(pem: pem)
        lastServerKey.withLock { $0 = parsed }
        return parsed
    }

    /// RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label) of the session key, as b64.
    public static func wrapSessionKey(_ key: SymmetricKey, publicKeyPEM: String) throws(Failure) -> String {
        try serverKey(pem: publicKeyPEM).wrap(key)
    }

    /// The SHA-256 fingerprint of a PEM public key, to compare with a pinned one.
    public static func fingerprint(publicKeyPEM: String) throws(Failure) -> String {
        try serverKey(pem: publicKeyPEM).fingerprint
    }

    /// Seals an inner request; for GET and DELETE pass an empty `body`.
    public static func sealRequest(
        _ body: Data, method: String, target: String, sessionId: String, seq: UInt64, key: SymmetricKey
    ) throws -> SealedEnvelope {
        let aad = EnvelopeAAD.request(method: method, target: target, sessionId: sessionId, seq: seq)
        return try EnvelopeCipher.seal(body, key: key, aad: aad, seq: seq)
    }

    /// Opens a sealed response, checking it echoes `expectedSeq` and binds `status`.
    public static func openResponse(
        _ bytes: Data, sessionId: String, expectedSeq: UInt64, status: Int, key: SymmetricKey
    ) throws(Failure) -> Data {
        let envelope: SealedEnvelope
        do {
            envelope = try SealedEnvelope(json: bytes)
        } catch {
            throw Failure(description: "the response is not a sealed envelope (\(error.message))")
        }
        return try openResponse(envelope, sessionId: sessionId, expectedSeq: expectedSeq, status: status, key: key)
    }

    /// The same, for an envelope already parsed.
    public static func openResponse(
        _ envelope: SealedEnvelope, sessionId: String, expectedSeq: UInt64, status: Int, key: SymmetricKey
    ) throws(Failure) -> Data {
        guard envelope.seq == expectedSeq else {
            throw Failure(description: "the response answers seq \(envelope.seq), not \(expectedSeq)")
        }
        let aad = EnvelopeAAD.response(sessionId: sessionId, seq: expectedSeq, status: status)
        do {
            return try EnvelopeCipher.open(envelope, key: key, aad: aad)
        } catch {
            throw Failure(description: "the response did not authenticate: refusing it")
        }
    }
}
