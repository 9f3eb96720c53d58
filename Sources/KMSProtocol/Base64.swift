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
            decodeTable.withUnsafeBufferPointer { table in
                // Every quantum but the last has no padding: four table lookups,
                // one validity test (an invalid byte maps to 0xFF, which sets bit 7).
                let whole = count / 4 - 1
                var written = 0
                for quantum in 0..<whole {
                    let at = quantum * 4
                    let (a, b, c, d) = (
                        table[Int(input[at])], table[Int(input[at + 1])], table[Int(input[at + 2])],
                        table[Int(input[at + 3])]
                    )
                    guard (a | b | c | d) & 0x80 == 0 else { return false }
                    let value = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    raw[written] = UInt8(truncatingIfNeeded: value >> 16)
                    raw[written + 1] = UInt8(truncatingIfNeeded: value >> 8)
                    raw[written + 2] = UInt8(truncatingIfNeeded: value)
                    written += 3
                }
                return decodeLastQuantum(input, at: whole * 4, padding: padding, table: table, into: raw, at: written)
            }
        }
        return ok ? out : nil
    }

    /// The last quantum: '=' only in its last `padding` positions, and the
    /// bits that padding hides must be zero (one text per value).
    private static func decodeLastQuantum(
        _ input: UnsafeBufferPointer<UInt8>, at index: Int, padding: Int, table: UnsafeBufferPointer<UInt8>,
        into raw: UnsafeMutableRawBufferPointer, at written: Int
    ) -> Bool {
        var quantum: UInt32 = 0
        for offset in 0..<4 {
            let byte = input[index + offset]
            let value = table[Int(byte)]
            if offset >= 4 - padding {
                guard byte == UInt8(ascii: "=") else { return false }
                quantum <<= 6
            } else {
                guard value != 0xFF else { return false }
                quantum = quantum << 6 | UInt32(value)
            }
        }
        let keep = 3 - padding
        if keep < 3, quantum & (0xFF_FFFF >> (8 * keep)) != 0 { return false }
        raw[written] = UInt8(truncatingIfNeeded: quantum >> 16)
        if keep > 1 { raw[written + 1] = UInt8(truncatingIfNeeded: quantum >> 8) }
        if keep > 2 { raw[written + 2] = UInt8(truncatingIfNeeded: quantum) }
        return true
    }

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in standardAlphabet.enumerated() {
            table[Int(byte)] = UInt8(value)
        }
        return table
    }()

    /// RFC 4648 section 4, padded: what `JSONEncoder` writes for `Data`.
    public static func encode(_ data: some DataProtocol) -> String {
        encode(data, alphabet: standardAlphabet, pad: true)
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
        encode(data, alphabet: urlAlphabet, pad: false)
    }

    /// Appends the standard, padded encoding of `data` to `bytes` (JSON writers).
    public static func append(_ data: some DataProtocol, to bytes: inout [UInt8]) {
        let start = bytes.count
        let length = encodedLength(data.count, pad: true)
        bytes.append(contentsOf: repeatElement(0, count: length))
        bytes.withUnsafeMutableBufferPointer { buffer in
            write(
                data, alphabet: standardAlphabet, pad: true,
                into: UnsafeMutableBufferPointer(rebasing: buffer[start...]))
        }
    }

    private static let standardAlphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static func encodedLength(_ count: Int, pad: Bool) -> Int {
        pad ? (count + 2) / 3 * 4 : count / 3 * 4 + [0, 2, 3][count % 3]
    }

    /// Straight into the string's storage: no `Data` copy, no character replacement.
    private static func encode(_ data: some DataProtocol, alphabet: [UInt8], pad: Bool) -> String {
        let length = encodedLength(data.count, pad: pad)
        guard length > 0 else { return "" }
        return String(unsafeUninitializedCapacity: length) { buffer in
            write(data, alphabet: alphabet, pad: pad, into: buffer)
            return length
        }
    }

    /// Writes exactly `encodedLength(data.count, pad:)` bytes at the start of `out`.
    private static func write(
        _ data: some DataProtocol, alphabet: [UInt8], pad: Bool, into out: UnsafeMutableBufferPointer<UInt8>
    ) {
        func run(_ input: UnsafeRawBufferPointer) {
            alphabet.withUnsafeBufferPointer { table in
                var written = 0
                var index = 0
                let count = input.count
                while index + 3 <= count {
                    let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                    out[written] = table[Int(value >> 18)]
                    out[written + 1] = table[Int(value >> 12 & 0x3F)]
                    out[written + 2] = table[Int(value >> 6 & 0x3F)]
                    out[written + 3] = table[Int(value & 0x3F)]
                    written += 4
                    index += 3
                }
                let rest = count - index
                guard rest > 0 else { return }
                let value = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
                out[written] = table[Int(value >> 18)]
                out[written + 1] = table[Int(value >> 12 & 0x3F)]
                written += 2
                if rest == 2 {
                    out[written] = table[Int(value >> 6 & 0x3F)]
                    written += 1
                }
                if pad {
                    while written % 4 != 0 {
                        out[written] = UInt8(ascii: "=")
                        written += 1
                    }
                }
            }
        }
        if data.withContiguousStorageIfAvailable({ run(UnsafeRawBufferPointer($0)) }) == nil {
            Array(data).withUnsafeBytes { run($0) }
        }
    }
}
