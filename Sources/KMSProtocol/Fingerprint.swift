import Crypto
public import Foundation

/// `SHA256:` followed by the lowercase hex SHA-256 of a DER SubjectPublicKeyInfo:
/// what a client pins and what a person compares by eye.
public enum Fingerprint {
    public static func of(spkiDER: some DataProtocol) -> String {
        "SHA256:" + Hex.encode(SHA256.hash(data: Data(spkiDER)))
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
