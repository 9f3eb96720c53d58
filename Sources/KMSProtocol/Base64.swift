public import Foundation

/// The two base64 forms of the wire contract, decoded strictly.
///
/// Lenient decoders accept several spellings of one value; the contract
/// refuses all but the canonical one (RFC 4648 section 4, padded) so that
/// what was authenticated and what was meant cannot drift apart.
public enum Base64 {
    /// Decodes RFC 4648 section 4 base64 with padding; `nil` for URL-safe
    /// characters, missing padding, whitespace or non-zero trailing bits.
    public static func decodeStrict(_ text: String) -> Data? {
        let utf8 = text.utf8
        guard utf8.count % 4 == 0 else { return nil }
        var padding = 0
        for (offset, byte) in utf8.enumerated() {
            if byte == UInt8(ascii: "=") {
                guard offset >= utf8.count - 2 else { return nil }
                padding += 1
            } else {
                guard padding == 0, isAlphabet(byte) else { return nil }
            }
        }
        guard let data = Data(base64Encoded: text) else { return nil }
        // Canonical form only: re-encoding must give the same text (no stray trailing bits).
        guard data.base64EncodedString() == text else { return nil }
        return data
    }

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
    }

    /// RFC 4648 section 5, without padding (session ids and issued tokens).
    public static func encodeURL(_ data: some DataProtocol) -> String {
        var text = Data(data).base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    private static func isAlphabet(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }
}
