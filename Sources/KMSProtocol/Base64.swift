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
        var text = text
        return text.withUTF8 { decodeStrict(bytes: $0) }
    }

    /// The same, over raw bytes (one pass, no intermediate strings).
    public static func decodeStrict(bytes input: UnsafeBufferPointer<UInt8>) -> Data? {
        let count = input.count
        guard count % 4 == 0 else { return nil }
        guard count > 0 else { return Data() }
        var padding = 0
        if input[count - 1] == UInt8(ascii: "=") { padding = input[count - 2] == UInt8(ascii: "=") ? 2 : 1 }
        var out = Data(count: count / 4 * 3 - padding)
        let ok = out.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> Bool in
            var written = 0
            var index = 0
            while index < count {
                var quantum: UInt32 = 0
                var values = 4
                for offset in 0..<4 {
                    let byte = input[index + offset]
                    let value = decodeTable[Int(byte)]
                    if value == 0xFF {
                        // '=' only in the last one or two positions of the last quantum.
                        guard byte == UInt8(ascii: "="), index + 4 == count, offset >= 4 - padding else { return false }
                        values -= 1
                        quantum <<= 6
                    } else {
                        guard values == 4 else { return false }
                        quantum = quantum << 6 | UInt32(value)
                    }
                }
                let keep = values - 1
                // Canonical form: the bits that padding hides must be zero.
                if keep < 3, quantum & (0xFF_FFFF >> (8 * keep)) != 0 { return false }
                raw[written] = UInt8(truncatingIfNeeded: quantum >> 16)
                if keep > 1 { raw[written + 1] = UInt8(truncatingIfNeeded: quantum >> 8) }
                if keep > 2 { raw[written + 2] = UInt8(truncatingIfNeeded: quantum) }
                written += keep
                index += 4
            }
            return true
        }
        return ok ? out : nil
    }

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(value)
        }
        return table
    }()

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
    }

    /// The bytes of an unpadded RFC 4648 section 5 text, nil unless it is the
    /// canonical encoding of them (one text per value: key ids are names).
    public static func decodeURL(_ text: String) -> Data? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !text.contains("+"), !text.contains("/"), !text.contains("=") else { return nil }
        while standard.utf8.count % 4 != 0 { standard += "=" }
        guard let data = decodeStrict(standard), encodeURL(data) == text else { return nil }
        return data
    }

    /// RFC 4648 section 5, without padding (session ids and issued tokens).
    public static func encodeURL(_ data: some DataProtocol) -> String {
        var text = Data(data).base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }
}
