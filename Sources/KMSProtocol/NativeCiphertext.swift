public import Foundation

/// A native ciphertext, `kms:v1:<keyId>:<version>:<b64(iv || ciphertext || tag)>` (api-v1): the one
/// parser of its shape, used by the server (`KeyCiphertext(parsing:)`), by clients to check an answer
/// against itself, and by `kms inspect-file` to show a file's key. The server alone decides what it
/// opens under; the shape's rules are the server's, so a client accepts no answer the server refuses.
public enum NativeCiphertext {
    public static let prefix = "kms:v1:"
    public static let keyIdPrefix = "key_"

    /// A key id: `key_` and at most 60 more URL-safe characters (A-Z a-z 0-9 - _).
    public static func isKeyId(_ text: String) -> Bool {
        text.bytesHave(prefix: keyIdPrefix) && text.utf8.count <= 64 && text.utf8.count > keyIdPrefix.utf8.count
            && text.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_")
            }
    }

    /// Its key id, version (1 to 2^31 − 1, decimal, no leading zero) and sealed bytes (strict base64, at
    /// least an IV and a tag), or nil when it is not one. Works on the UTF-8 bytes: splitting the string
    /// by `Character` (grapheme clusters) cost a sealed decrypt a fifth of its server time (issue 18's
    /// profile).
    public static func parse(_ text: String) -> (keyId: String, version: Int, sealed: Data)? {
        var text = text
        return text.withUTF8 { utf8 in
            let prefix = Self.prefix.utf8
            guard utf8.count <= 200_000, utf8.count > prefix.count, utf8.starts(with: prefix) else { return nil }
            let colon = UInt8(ascii: ":")
            let keyStart = prefix.count
            guard let keyEnd = utf8[keyStart...].firstIndex(of: colon),
                let versionEnd = utf8[(keyEnd + 1)...].firstIndex(of: colon)
            else { return nil }
            let keyId = String(decoding: UnsafeBufferPointer(rebasing: utf8[keyStart..<keyEnd]), as: UTF8.self)
            let digits = utf8[(keyEnd + 1)..<versionEnd]
            guard isKeyId(keyId), (1...10).contains(digits.count), digits.first != UInt8(ascii: "0"),
                digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
            else { return nil }
            let version = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            // A third colon is not base64, so the strict decoder refuses it (the split had three parts).
            guard version <= Int(Int32.max),
                let sealed = Base64.decodeStrict(bytes: UnsafeBufferPointer(rebasing: utf8[(versionEnd + 1)...])),
                sealed.count >= 28
            else { return nil }
            return (keyId, version, sealed)
        }
    }

    /// The key id and version it names, or nil when it is not a native ciphertext.
    public static func keyAndVersion(_ text: String) -> (keyId: String, version: Int)? {
        parse(text).map { ($0.keyId, $0.version) }
    }
}
