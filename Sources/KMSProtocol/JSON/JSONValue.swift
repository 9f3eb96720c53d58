/// A parsed JSON value that keeps integers apart from other numbers.
///
/// The wire contract refuses `1.0` where an integer is expected and refuses
/// duplicate or unknown keys; Foundation's decoders blur all three, so request
/// bodies are read through this type instead.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits in `Int64`.
    case integer(Int64)
    /// Any other number, kept as written so it can be reported, never guessed at.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; keys are unique (the parser refuses duplicates).
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A short name of the JSON type, used in error messages ("expected a string, got an integer").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer: return "an integer"
        case .number: return isIntegerLiteral ? "an integer out of range" : "a non-integer number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue {
    /// A number written without fraction or exponent that did not fit in an
    /// `Int64` (the parser keeps such a literal as `.number`).
    public var isIntegerLiteral: Bool {
        guard case .number(let text) = self else { return false }
        return !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    }

    /// The member named exactly `name`, byte for byte. Swift's `==` on
    /// `String` compares canonical equivalence, under which the Kelvin sign
    /// K (U+212A) equals `K`: a review had `"wrapped\u{212A}ey"` read as
    /// `wrappedKey` instead of refused as unknown. RFC 8259 compares names
    /// as code points. (The parser still refuses two names that are merely
    /// equivalent as duplicates: tags and contexts become Swift dictionaries,
    /// where they would collide.)
    public static func member(_ members: [(String, JSONValue)], named name: String) -> JSONValue? {
        members.first { sameName($0.0, name) }?.1
    }

    /// Whether two member names are the same, byte for byte (see `member`).
    public static func sameName(_ a: String, _ b: String) -> Bool { a.bytesEqual(b) }
}
