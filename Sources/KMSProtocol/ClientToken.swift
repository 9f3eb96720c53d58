public import Crypto
public import Foundation

/// The client token of protocol v1 section 6: it names a session, it does not
/// authorise (the session key does), and the server keeps only its hash.
public enum ClientToken {
    /// The longest token and the longest `KMS_TOKEN_PREFIX`.
    public static let maxLength = 256
    public static let minLength = 32
    public static let maxPrefixLength = 64

    /// `[A-Za-z0-9._~-]`
    public static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
            UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Whether `token` matches `[A-Za-z0-9._~-]{32,256}` and starts with
    /// `prefix` when one is set. The prefix is compared as bytes, not as
    /// canonically equivalent text. Read as contiguous UTF-8: every sealed
    /// request checks its token, and a generic form called from another
    /// module walked it byte by byte through protocol witnesses.
    public static func isWellFormed(_ token: String, prefix: String?) -> Bool {
        var token = token
        let characters = token.withUTF8 { utf8 in
            (minLength...maxLength).contains(utf8.count) && utf8.allSatisfy(isTokenCharacter)
        }
        guard characters else { return false }
        if let prefix, !prefix.isEmpty { return token.utf8.starts(with: prefix.utf8) }
        return true
    }

    /// The same for a substring.
    public static func isWellFormed(_ token: some StringProtocol, prefix: String?) -> Bool {
        isWellFormed(String(token), prefix: prefix)
    }

    /// A `KMS_TOKEN_PREFIX` either side may use: at most `maxPrefixLength` token characters. The server's
    /// setting and the client's `tokenPrefix` are judged by this one rule.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        prefix.utf8.count <= maxPrefixLength && prefix.utf8.allSatisfy(isTokenCharacter)
    }

    /// A fresh server-issued token: the prefix and the b64url of 32 CSPRNG bytes.
    public static func issue(prefix: String?) -> String {
        let random = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return (prefix ?? "") + Base64.encodeURL(random)
    }

    /// SHA-256 of the token's bytes: the only form in which a server stores or compares it.
    public static func hash(_ token: String) -> TokenHash {
        var token = token
        return TokenHash(digest: token.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) })
    }

    /// The same for a substring.
    public static func hash(_ token: some StringProtocol) -> TokenHash {
        hash(String(token))
    }
}

/// SHA-256 of a client token, as four words so that a session index keyed by it stays small.
public struct TokenHash: Hashable, Sendable {
    public let words: (UInt64, UInt64, UInt64, UInt64)

    public init(digest: SHA256.Digest) {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        digest.withUnsafeBytes { raw in
            words = (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
        self.words = words
    }

    /// nil unless exactly 32 bytes (a stored hash read back from a database).
    public init?(bytes: some DataProtocol) {
        guard bytes.count == 32 else { return nil }
        let data = Data(bytes)
        self.words = data.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
    }

    /// The 32 digest bytes (for storage in a shared store).
    public var bytes: Data {
        var copy = words
        return withUnsafeBytes(of: &copy) { Data($0) }
    }

    public static func == (lhs: TokenHash, rhs: TokenHash) -> Bool {
        // Constant time: fold every word before deciding.
        ((lhs.words.0 ^ rhs.words.0) | (lhs.words.1 ^ rhs.words.1) | (lhs.words.2 ^ rhs.words.2)
            | (lhs.words.3 ^ rhs.words.3)) == 0
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}
