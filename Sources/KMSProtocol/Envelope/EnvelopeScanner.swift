import Foundation

/// One pass over the usual envelope: members `seq`, `iv`, `ciphertext` and
/// `tag` (any order, JSON whitespace anywhere), plain strings and a plain
/// integer. It returns nil for anything else, and `SealedEnvelope(json:)` then
/// runs the general parser, so every envelope it accepts is one the general
/// parser accepts with the same values, and every refusal keeps its message.
///
/// Why: parsing a 1 KiB envelope through `JSONValue`s (a `String` per member,
/// a dictionary, sets of names) cost about 10 µs a request on each side in
/// issue 18's profiles; this reads the bytes once and decodes base64 in place.
package enum EnvelopeScanner {
    package static func scan(_ input: UnsafeBufferPointer<UInt8>) -> SealedEnvelope? {
        var scanner = Cursor(input: input)
        var seq: UInt64?
        var iv: Data?
        var ciphertext: Data?
        var tag: Data?
        scanner.skipWhitespace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        while true {
            scanner.skipWhitespace()
            guard let key = scanner.plainString() else { return nil }
            scanner.skipWhitespace()
            guard scanner.take(UInt8(ascii: ":")) else { return nil }
            scanner.skipWhitespace()
            switch Member(key) {
            case .seq:
                guard seq == nil, let value = scanner.integer(max: SealedEnvelope.maxSeq) else { return nil }
                seq = value
            case .iv:
                guard iv == nil, let value = scanner.base64(), value.count == 12 else { return nil }
                iv = value
            case .ciphertext:
                guard ciphertext == nil, let value = scanner.base64() else { return nil }
                ciphertext = value
            case .tag:
                guard tag == nil, let value = scanner.base64(), value.count == 16 else { return nil }
                tag = value
            case nil:
                return nil
            }
            scanner.skipWhitespace()
            if scanner.take(UInt8(ascii: ",")) { continue }
            guard scanner.take(UInt8(ascii: "}")) else { return nil }
            break
        }
        scanner.skipWhitespace()
        guard scanner.atEnd, let seq, let iv, let ciphertext, let tag else { return nil }
        return SealedEnvelope(seq: seq, iv: iv, ciphertext: ciphertext, tag: tag)
    }

    private enum Member {
        case seq, iv, ciphertext, tag

        init?(_ name: UnsafeBufferPointer<UInt8>) {
            if name.elementsEqual("seq".utf8) {
                self = .seq
            } else if name.elementsEqual("iv".utf8) {
                self = .iv
            } else if name.elementsEqual("ciphertext".utf8) {
                self = .ciphertext
            } else if name.elementsEqual("tag".utf8) {
                self = .tag
            } else {
                return nil
            }
        }
    }

    private struct Cursor {
        let input: UnsafeBufferPointer<UInt8>
        var index = 0

        var atEnd: Bool { index == input.count }

        mutating func skipWhitespace() {
            while index < input.count {
                switch input[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < input.count, input[index] == byte else { return false }
            index += 1
            return true
        }

        /// A string without escapes or control characters, as its raw bytes.
        mutating func plainString() -> UnsafeBufferPointer<UInt8>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < input.count {
                let byte = input[index]
                if byte == UInt8(ascii: "\"") {
                    defer { index += 1 }
                    return UnsafeBufferPointer(rebasing: input[start..<index])
                }
                guard byte >= 0x20, byte != UInt8(ascii: "\\") else { return nil }
                index += 1
            }
            return nil
        }

        /// A JSON integer in 0...max (no sign, fraction or exponent, no leading zero).
        mutating func integer(max: UInt64) -> UInt64? {
            guard index < input.count else { return nil }
            var value: UInt64 = 0
            if input[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                let start = index
                while index < input.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(input[index]) {
                    guard index - start < 16 else { return nil }
                    value = value * 10 + UInt64(input[index] - UInt8(ascii: "0"))
                    index += 1
                }
                guard index > start, value <= max else { return nil }
            }
            // A fraction, an exponent or a digit after a leading zero: the general parser decides.
            if index < input.count {
                switch input[index] {
                case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    return nil
                default: break
                }
            }
            return value
        }

        /// A plain string holding canonical padded base64 (see `Base64.decodeStrict`).
        mutating func base64() -> Data? {
            guard let text = plainString() else { return nil }
            return Base64.decodeStrict(bytes: text)
        }
    }
}
