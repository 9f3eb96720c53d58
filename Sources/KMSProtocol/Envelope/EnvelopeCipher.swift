public import Crypto
public import Foundation

/// Seals and opens envelopes: AES-256-GCM with a random 12-byte IV and a 16-byte tag.
///
/// Client and server call the same two functions, so the byte layout cannot
/// differ between them; the test vectors in docs/protocol.md pin it.
public enum EnvelopeCipher {
    /// The one failure of `open`: a wrong key, AAD, IV, ciphertext or tag all look the same.
    public struct AuthenticationFailure: Error, Equatable, Sendable {
        public init() {}
    }

    /// Seals `plaintext`; `iv` is drawn from the system CSPRNG unless a test vector fixes it.
    public static func seal(
        _ plaintext: some DataProtocol, key: SymmetricKey, aad: [UInt8], seq: UInt64,
        iv: AES.GCM.Nonce = AES.GCM.Nonce()
    ) throws -> SealedEnvelope {
        let (ciphertext, tag) = try AESGCM256.seal(plaintext, key: key, nonce: iv, aad: aad)
        return SealedEnvelope(seq: seq, iv: Data(iv), ciphertext: ciphertext, tag: tag)
    }

    /// Seals a response body answering request `seq`, binding the HTTP status
    /// (protocol v1 section 5), and returns the envelope JSON sent on the wire.
    public static func sealResponse(
        _ body: Data, key: SymmetricKey, sessionId: String, seq: UInt64, status: Int
    ) throws -> Data {
        try seal(body, key: key, aad: EnvelopeAAD.response(sessionId: sessionId, seq: seq, status: status), seq: seq)
            .json
    }

    /// Opens `envelope`, or throws `AuthenticationFailure`.
    public static func open(_ envelope: SealedEnvelope, key: SymmetricKey, aad: [UInt8]) throws(AuthenticationFailure)
        -> Data
    {
        guard
            let plaintext = AESGCM256.open(
                ciphertext: envelope.ciphertext, tag: envelope.tag, nonce: envelope.iv, key: key, aad: aad)
        else { throw AuthenticationFailure() }
        return plaintext
    }
}
