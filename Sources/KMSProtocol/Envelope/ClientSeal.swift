public import Crypto
import CryptoExtras
public import Foundation

/// The client side of the protocol's cryptography: wrapping a session key to
/// the server's identity key, sealing requests and opening responses.
///
/// Shared by the Swift client and the tests, so both speak exactly what the
/// server expects (and the server's own test vectors pin the bytes).
public enum ClientSeal {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label) of the session key, as b64.
    public static func wrapSessionKey(_ key: SymmetricKey, publicKeyPEM: String) throws(Failure) -> String {
        do {
            let publicKey = try _RSA.Encryption.PublicKey(unsafePEMRepresentation: publicKeyPEM)
            guard publicKey.keySizeInBits == 4096 else { throw Failure(description: "the server key is not RSA-4096") }
            let wrapped = try key.withUnsafeBytes { try publicKey.encrypt(Data($0), padding: .PKCS1_OAEP_SHA256) }
            return Base64.encode(wrapped)
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "the server's public key is not a usable RSA public key")
        }
    }

    /// The SHA-256 fingerprint of a PEM public key, to compare with a pinned one.
    public static func fingerprint(publicKeyPEM: String) throws(Failure) -> String {
        do {
            let publicKey = try _RSA.Encryption.PublicKey(unsafePEMRepresentation: publicKeyPEM)
            return Fingerprint.of(spkiDER: publicKey.derRepresentation)
        } catch {
            throw Failure(description: "the server's public key is not a valid RSA public key")
        }
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
