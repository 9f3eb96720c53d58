public import Foundation

/// Compact JSON written straight into bytes: the hot paths (audit lines, the
/// sealed responses) write a few small objects per request, where building
/// `String`s scalar by scalar, or running `JSONEncoder`, cost more than the
/// cryptography around them (issue 18's profile).
public struct JSONBytes: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Whether the next member of the open object needs a comma before it.
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's name; its value follows.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    public mutating func integer(_ value: Int64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    /// A number already in JSON form, `true`, `false` or `null`.
    public mutating func literal(_ text: String) {
        separate()
        bytes.append(contentsOf: text.utf8)
        needsComma = true
    }

    /// One object member whose value is a string.
    public mutating func member(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    /// One object member whose value is an integer.
    public mutating func member(_ name: String, integer value: Int) {
        key(name)
        integer(Int64(value))
    }

    /// One object member whose value is an object of strings, keys in
    /// ascending order of their UTF-8 bytes.
    public mutating func member(_ name: String, strings value: [String: String]) {
        key(name)
        beginObject()
        for (key, text) in value.sorted(by: { $0.key.bytesPrecede($1.key) }) {
            member(key, text)
        }
        endObject()
    }

    /// One object member whose value is bytes, in standard base64.
    public mutating func member(_ name: String, base64 value: Data) {
        key(name)
        base64(value)
    }

    /// Standard base64 (as `JSONEncoder` writes `Data`).
    public mutating func base64(_ value: Data) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        Base64.append(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    /// A JSON string literal: `"` and `\` escaped, control characters as
    /// `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX` (as `JSONEncoder` writes them), everything else (UTF-8) as is. Text
    /// without any of those is copied in one go.
    private mutating func appendQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            guard utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
                bytes.append(contentsOf: utf8)
                return
            }
            for byte in utf8 {
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
                case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
                case ..<0x20:
                    let digits = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: Array("\\u00".utf8))
                    bytes.append(digits[Int(byte >> 4)])
                    bytes.append(digits[Int(byte & 0x0F)])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// A response type that writes its own compact, key-sorted JSON, byte for byte
/// what `WireJSON`'s `JSONEncoder` would write (a test holds them equal), for
/// the types every sealed call returns.
public protocol WireJSONWritable: Encodable {
    func write(to json: inout JSONBytes)
}
