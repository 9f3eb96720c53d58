import Crypto
public import Foundation

/// `SHA256:` followed by the lowercase hex SHA-256 of a DER SubjectPublicKeyInfo:
/// what a client pins and what a person compares by eye.
public enum Fingerprint {
    public static func of(spkiDER: some DataProtocol) -> String {
        "SHA256:" + Hex.encode(SHA256.hash(data: Data(spkiDER)))
    }

    /// `SHA256:` and 64 hexadecimal digits (either case): a fingerprint a
    /// client can pin. An empty or malformed one must be refused where it is
    /// given, never read as "not pinned".
    public static func isWellFormed(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 71, text.lowercased().hasPrefix("sha256:") else { return false }
        return bytes[7...].allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0 | 0x20)
        }
    }

    /// Whether two fingerprints are equal, ignoring case, in time independent of where they differ.
    public static func matches(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.lowercased().utf8)
        let b = Array(rhs.lowercased().utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
