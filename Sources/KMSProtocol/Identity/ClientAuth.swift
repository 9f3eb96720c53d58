public import Crypto
public import Foundation

/// identity-v1 section 2: what a client signs at key exchange, and the checks
/// on a client's Ed25519 public key, shared by the server and every client.
public enum ClientAuth {
    /// The domain-separation line that starts every transcript.
    public static let label = "kms-v1/client-auth"

    /// `"kms-v1/client-auth" \n sessionId \n hex(SHA-256(W)) \n hex(SHA-256(T)) \n F`,
    /// no trailing newline. `wrappedKey` is W decoded, `token` the
    /// `X-Client-Token` of the request, `serverFingerprint` the one the client
    /// computed (and pinned) from `/session/init`.
    ///
    /// W binds the signature to this session key (an on-path attacker cannot
    /// swap in its own), T to this token (hashed, so the token stays out of the
    /// transcript), F to the server the client meant.
    public static func transcript(
        sessionId: String, wrappedKey: some DataProtocol, token: String, serverFingerprint: String
    ) -> Data {
        let lines = [
            label, sessionId, Hex.encode(SHA256.hash(data: Data(wrappedKey))),
            Hex.encode(SHA256.hash(data: Data(token.utf8))), serverFingerprint,
        ]
        return Data(lines.joined(separator: "\n").utf8)
    }

    /// `SHA256:` + hex(SHA-256 of the raw 32-byte key): a client's `clientKey`
    /// (not of an SPKI, unlike the server's fingerprint).
    public static func fingerprint(rawPublicKey: some DataProtocol) -> String {
        "SHA256:" + Hex.encode(SHA256.hash(data: Data(rawPublicKey)))
    }

    /// The `clientKey` grammar: `SHA256:` + 64 lowercase hex.
    public static func isWellFormedClientKey(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 71, text.bytesHave(prefix: "SHA256:") else { return false }
        return bytes[7...].allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
        }
    }

    /// Section 13.1: a 32-byte encoding that is non-canonical (y ≥ p) or names
    /// a point of small order, in any encoding (the sign bit ignored). Such a
    /// key lets one signature verify over every message, so it is never enrolled.
    public static func isWeakPublicKey(_ raw: some DataProtocol) -> Bool {
        let bytes = Array(raw)
        guard bytes.count == 32 else { return true }
        var masked = bytes
        masked[31] &= 0x7f
        // y ≥ p = 2^255 − 19: 0x7fff…ff with a low byte of at least 0xed.
        if masked[31] == 0x7f, masked[1...30].allSatisfy({ $0 == 0xff }), masked[0] >= 0xed { return true }
        return smallOrderEncodings.contains(masked)
    }

    /// What enrolment takes (section 1, section 13.1): 32 bytes that are not
    /// weak (``isWeakPublicKey(_:)``) and decode to a point of the curve. The
    /// contract asks only for the first; a key off the curve could never sign
    /// a key exchange, so it is refused too rather than enrolled as a client
    /// that can never authenticate (a review enrolled y = 2).
    public static func isEnrollablePublicKey(_ raw: some DataProtocol) -> Bool {
        let bytes = Array(raw)
        return bytes.count == 32 && !isWeakPublicKey(bytes) && Ed25519Point.isOnCurve(bytes)
    }

    /// The y-coordinates (sign bit cleared) of the eight points of order
    /// dividing 8: 0 (order 4), 1 (identity), the two of order 8, and p − 1
    /// (order 2); libsodium blocks the same list.
    static let smallOrderEncodings: Set<[UInt8]> = {
        func le(_ hex: String) -> [UInt8] { Hex.decode(hex) ?? [] }
        let pMinusOne = [UInt8(0xec)] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
        return [
            [UInt8](repeating: 0, count: 32),
            [1] + [UInt8](repeating: 0, count: 31),
            le("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
            le("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            pMinusOne,
        ]
    }()

    /// Signs a transcript with the client's key (RFC 8032, deterministic).
    public static func sign(_ transcript: Data, with key: Curve25519.Signing.PrivateKey) throws -> Data {
        try key.signature(for: transcript)
    }

    /// RFC 8032 verification (S < L, cofactorless, as BoringSSL does it).
    public static func verify(_ signature: some DataProtocol, transcript: Data, publicKey: Curve25519.Signing.PublicKey)
        -> Bool
    {
        publicKey.isValidSignature(signature, for: transcript)
    }
}
