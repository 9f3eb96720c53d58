/// A strict RFC 8259 parser: no comments, no trailing commas, no duplicate keys,
/// bounded nesting. Errors carry a position only, never the input, so that a
/// parse failure can be reported without echoing a secret.
public struct JSONParser {
    /// Why a document was refused.
    public struct Failure: Error, Equatable, Sendable {
        public let message: String
        public let offset: Int
        /// For a lone surrogate only: the member whose string holds it
        /// (`set.d`, `remove[0]`), so the answer can name the field as
        /// lifecycle-v1 rule 9.7 asks. A key that holds one is named with
        /// U+FFFD in its place. Nil at the top level, and for every other failure.
        public var member: String?

        init(message: String, offset: Int, member: String? = nil) {
            self.message = message
            self.offset = offset
            self.member = member
        }
    }

    private static let loneSurrogate = "unpaired surrogate"

    private let bytes: [UInt8]
    private var index = 0
    private let maxDepth: Int
    /// Set only when a parse failed on a lone surrogate and runs again to find
    /// where: surrogates then read as U+FFFD and the path is kept, which the
    /// usual parse does not pay for.
    private var locator: Locator?

    private struct Locator {
        var path: [String] = []
        var surrogates = 0
        var found: [String]?

        var member: String? {
            guard let found, let first = found.first else { return nil }
            return found.dropFirst().reduce(first) { $0 + ($1.hasPrefix("[") ? $1 : "." + $1) }
        }
    }

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Parses one JSON document (surrounding whitespace allowed, nothing else).
    public static func parse(_ bytes: some Sequence<UInt8>, maxDepth: Int = 32) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        do {
            return try parser.parseDocument()
        } catch  where error.message == loneSurrogate {
            // Again, to name the member (the first failure stands whatever this finds).
            var locating = JSONParser(bytes: parser.bytes, maxDepth: maxDepth)
            locating.locator = Locator()
            _ = try? locating.parseDocument()
            var failure = error
            failure.member = locating.locator?.member
            throw failure
        }
    }

    private mutating func parseDocument() throws(Failure) -> JSONValue {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw failure("unexpected data after the JSON value") }
        return value
    }

    /// Notes where the first lone surrogate is, when locating: in the string just read,
    /// which is the member `path` names, or the key `key` of it.
    private mutating func noteSurrogates(before: Int, key: String? = nil) {
        guard var located = locator, located.found == nil, located.surrogates > before else { return }
        located.found = located.path + (key.map { [$0] } ?? [])
        locator = located
    }

    private func failure(_ message: String) -> Failure {
        Failure(message: message, offset: index)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func parseValue(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= maxDepth else { throw failure("nesting too deep") }
        guard index < bytes.count else { throw failure("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""):
            let before = locator?.surrogates ?? 0
            let text = try parseString()
            if locator != nil { noteSurrogates(before: before) }
            return .string(text)
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw failure("unexpected end of input") }
        let matches = literal.withUTF8Buffer { buffer in
            buffer.indices.allSatisfy { bytes[index + $0] == buffer[$0] }
        }
        guard matches else { throw failure("invalid literal") }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(Failure) -> JSONValue {
        index += 1
        var members: [(String, JSONValue)] = []
        var seen = Set<String>()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a key") }
            let before = locator?.surrogates ?? 0
            let key = try parseString()
            if locator != nil { noteSurrogates(before: before, key: key) }
            // A few members are compared directly; past that a set keeps a
            // body of many members from costing quadratic time.
            if members.count < 8 {
                guard !members.contains(where: { $0.0 == key }) else { throw failure("duplicate key") }
            } else {
                if seen.isEmpty { seen = Set(members.map(\.0)) }
                guard seen.insert(key).inserted else { throw failure("duplicate key") }
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            index += 1
            skipWhitespace()
            locator?.path.append(key)
            members.append((key, try parseValue(depth: depth + 1)))
            locator?.path.removeLast()
            skipWhitespace()
            guard index < bytes.count else { throw failure("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            } else {
                throw failure("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(Failure) -> JSONValue {
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            locator?.path.append("[\(elements.count)]")
            elements.append(try parseValue(depth: depth + 1))
            locator?.path.removeLast()
            skipWhitespace()
            guard index < bytes.count else { throw failure("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            } else {
                throw failure("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(Failure) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw failure("invalid number") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let value = Int64(text) { return .integer(value) }
        return .number(text)
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func parseString() throws(Failure) -> String {
        index += 1
        let start = index
        // Fast path: no escapes (base64, ids, most keys) is one slice, validated once.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                defer { index += 1 }
                return try utf8String(bytes[start..<index], at: start)
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw failure("control character in string") }
            index += 1
        }
        var buffer = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return try utf8String(buffer[...], at: start)
            }
            if byte < 0x20 { throw failure("control character in string") }
            if byte == UInt8(ascii: "\\") {
                index += 1
                buffer.append(contentsOf: String(try parseEscape()).utf8)
                continue
            }
            buffer.append(byte)
            index += 1
        }
        throw failure("unterminated string")
    }

    private func utf8String(_ slice: ArraySlice<UInt8>, at offset: Int) throws(Failure) -> String {
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw Failure(message: "invalid UTF-8 in string", offset: offset)
        }
        return text
    }

    private mutating func parseEscape() throws(Failure) -> Unicode.Scalar {
        guard index < bytes.count else { throw failure("unterminated escape") }
        let byte = bytes[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let first = try parseHex4()
            if (0xD800...0xDBFF).contains(first) {
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                else { return try replacingLoneSurrogate() }
                let afterFirst = index
                index += 2
                let second = try parseHex4()
                guard (0xDC00...0xDFFF).contains(second) else {
                    index = afterFirst  // the second escape is read on its own
                    return try replacingLoneSurrogate()
                }
                let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                guard let scalar = Unicode.Scalar(combined) else { throw failure("invalid escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(first) else { return try replacingLoneSurrogate() }
            return scalar
        default:
            throw failure("invalid escape")
        }
    }

    /// A lone surrogate fails the parse, except when locating one (U+FFFD, counted).
    private mutating func replacingLoneSurrogate() throws(Failure) -> Unicode.Scalar {
        guard locator != nil else { throw failure(Self.loneSurrogate) }
        locator?.surrogates += 1
        return "\u{FFFD}"
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw failure("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw failure("invalid \\u escape")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }
}
