public import Foundation

/// A request field that is missing, of the wrong type, out of range or not allowed.
///
/// `field` names the offending member so the server can answer `400` with
/// `"field"`; the message never quotes the value, which may be secret.
public struct RequestFieldError: Error, Equatable, Sendable {
    public let field: String?
    public let message: String

    public init(field: String?, message: String) {
        self.field = field
        self.message = message
    }
}

/// Reads the members of one JSON object by name, refusing wrong types and,
/// at `finish()`, every member that was not read: the contract refuses
/// unknown fields so that a typo (`"add"` for `"aad"`) never passes silently.
public struct JSONObjectReader {
    /// Members in document order; looked up by a linear scan, which for the
    /// few members of a request is cheaper than hashing every name.
    private let members: [(String, JSONValue)]
    private var read: [Bool]

    /// Reads from an already parsed value, which must be an object.
    public init(_ value: JSONValue) throws(RequestFieldError) {
        guard case .object(let pairs) = value else {
            throw RequestFieldError(field: nil, message: "the body must be a JSON object, got \(value.typeName)")
        }
        members = pairs
        read = Array(repeating: false, count: pairs.count)
    }

    /// Parses `bytes` as one JSON object.
    public init(bytes: some Sequence<UInt8>) throws(RequestFieldError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            if let member = error.member {
                // Well-formed JSON that is not text: answered like the member's other refusals
                // (lifecycle-v1 rule 9.7 names tag keys this way), with the member as `field`.
                throw RequestFieldError(
                    field: member,
                    message:
                        "`\(member)` holds a lone surrogate (a \\uD800-\\uDFFF escape without its pair), which is not text"
                )
            }
            throw Self.notJSON(error)
        }
        try self.init(value)
    }

    /// The refusal of a body that does not parse, with where it broke (both doors word it so).
    public static func notJSON(_ error: JSONParser.Failure) -> RequestFieldError {
        RequestFieldError(field: nil, message: "the body is not valid JSON (\(error.message) at byte \(error.offset))")
    }

    /// Whether the member is present (with any value); names compare byte
    /// for byte (`JSONValue.member(_:named:)` says why).
    public func contains(_ key: String) -> Bool { members.contains { JSONValue.sameName($0.0, key) } }

    /// The raw member, marked as read.
    public mutating func take(_ key: String) -> JSONValue? {
        guard let index = members.firstIndex(where: { JSONValue.sameName($0.0, key) }) else { return nil }
        read[index] = true
        return members[index].1
    }

    public mutating func string(_ key: String) throws(RequestFieldError) -> String {
        guard let value = try optionalString(key) else {
            throw RequestFieldError(field: key, message: "`\(key)` is required")
        }
        return value
    }

    public mutating func optionalString(_ key: String) throws(RequestFieldError) -> String? {
        guard let value = take(key) else { return nil }
        guard case .string(let text) = value else {
            throw RequestFieldError(field: key, message: "`\(key)` must be a string, got \(value.typeName)")
        }
        return text
    }

    public mutating func integer(_ key: String, in range: ClosedRange<Int64>) throws(RequestFieldError) -> Int64 {
        guard let value = try optionalInteger(key, in: range) else {
            throw RequestFieldError(field: key, message: "`\(key)` is required")
        }
        return value
    }

    public mutating func optionalInteger(_ key: String, in range: ClosedRange<Int64>) throws(RequestFieldError)
        -> Int64?
    {
        guard let value = take(key) else { return nil }
        let outOfRange = RequestFieldError(
            field: key, message: "`\(key)` must be between \(range.lowerBound) and \(range.upperBound)")
        switch value {
        case .integer(let number):
            guard range.contains(number) else { throw outOfRange }
            return number
        case .number where value.isIntegerLiteral:
            // An integer beyond Int64 is out of range, not "a non-integer".
            throw outOfRange
        default:
            throw RequestFieldError(field: key, message: "`\(key)` must be an integer, got \(value.typeName)")
        }
    }

    public mutating func boolean(_ key: String) throws(RequestFieldError) -> Bool {
        guard let value = take(key) else { throw RequestFieldError(field: key, message: "`\(key)` is required") }
        guard case .bool(let flag) = value else {
            throw RequestFieldError(field: key, message: "`\(key)` must be true or false, got \(value.typeName)")
        }
        return flag
    }

    /// A standard-alphabet, padded base64 member (see `Base64.decodeStrict`).
    public mutating func bytes(_ key: String, maxBytes: Int) throws(RequestFieldError) -> Data {
        guard let value = try optionalBytes(key, maxBytes: maxBytes) else {
            throw RequestFieldError(field: key, message: "`\(key)` is required")
        }
        return value
    }

    /// A required base64 member of exactly `count` bytes once decoded (an IV, a tag): one message
    /// for every other length, so that a longer value is not told "at most".
    public mutating func bytes(_ key: String, exactly count: Int) throws(RequestFieldError) -> Data {
        let value = try bytes(key, maxBytes: Int.max)
        guard value.count == count else {
            throw RequestFieldError(field: key, message: "`\(key)` must be \(count) bytes once decoded")
        }
        return value
    }

    public mutating func optionalBytes(_ key: String, maxBytes: Int) throws(RequestFieldError) -> Data? {
        guard let text = try optionalString(key) else { return nil }
        guard let data = Base64.decodeStrict(text) else {
            throw RequestFieldError(field: key, message: "`\(key)` must be standard base64 with padding")
        }
        guard data.count <= maxBytes else {
            throw RequestFieldError(field: key, message: "`\(key)` must be at most \(maxBytes) bytes once decoded")
        }
        return data
    }

    /// An object whose members are all strings (tags); nil when absent.
    public mutating func optionalStringMap(_ key: String) throws(RequestFieldError) -> [String: String]? {
        guard let value = take(key) else { return nil }
        guard case .object(let pairs) = value else {
            throw RequestFieldError(field: key, message: "`\(key)` must be an object, got \(value.typeName)")
        }
        var map: [String: String] = [:]
        for (name, member) in pairs {
            guard case .string(let text) = member else {
                throw RequestFieldError(field: "\(key).\(name)", message: "`\(key)` values must be strings")
            }
            map[name] = text
        }
        return map
    }

    /// An array of strings; nil when absent.
    public mutating func optionalStringArray(_ key: String, maxCount: Int) throws(RequestFieldError) -> [String]? {
        guard let value = take(key) else { return nil }
        guard case .array(let items) = value, items.count <= maxCount else {
            throw RequestFieldError(field: key, message: "`\(key)` must be an array of at most \(maxCount) strings")
        }
        var strings: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else {
                throw RequestFieldError(field: "\(key)[\(index)]", message: "`\(key)` entries must be strings")
            }
            strings.append(text)
        }
        return strings
    }

    /// Refuses the first member that no accessor read.
    public func finish() throws(RequestFieldError) {
        if let index = read.firstIndex(of: false) {
            let unknown = members[index].0
            // A member named "": still a field error (`invalid_request`, not a body-shape one), whose empty
            // name `KMSError` leaves out of the answer.
            guard !unknown.isEmpty else {
                throw RequestFieldError(field: "", message: "unknown field with an empty name")
            }
            // Echo at most 64 characters of a name the client chose.
            let name = unknown.count > 64 ? String(unknown.prefix(64)) + "…" : unknown
            throw RequestFieldError(field: name, message: "unknown field `\(name)`")
        }
    }
}
