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
        let box = try AES.GCM.seal(plaintext, using: key, nonce: iv, authenticating: aad)
        return SealedEnvelope(seq: seq, iv: Data(iv), ciphertext: Data(box.ciphertext), tag: Data(box.tag))
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
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: envelope.iv), ciphertext: envelope.ciphertext, tag: envelope.tag)
            return try AES.GCM.open(box, using: key, authenticating: aad)
        } catch {
            throw AuthenticationFailure()
        }
    }
}
