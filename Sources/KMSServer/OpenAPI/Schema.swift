import KMSProtocol

/// A JSON Schema (the OpenAPI 3.0 subset this API needs), written once per
/// wire type and used for the document, the `/docs` page and the sync tests.
indirect enum Schema: Sendable {
    struct Property: Sendable {
        let name: String
        let schema: Schema
        let required: Bool
        let description: String
    }

    case object([Property])
    case string(description: String = "", pattern: String? = nil, format: String? = nil, enumeration: [String]? = nil)
    case integer(minimum: Int64? = nil, maximum: Int64? = nil)
    case boolean
    case array(Schema)
    case reference(String)
    /// Any one of several shapes (sealed envelope or plain error).
    case oneOf([Schema])
    /// An object with any member names, each value of one schema (tags).
    case map(Schema)
    /// The schema, or `null` (OpenAPI 3.0's `nullable`).
    case nullable(Schema)
    /// The schema with the size limits the server's reader enforces (a review: they were in prose only,
    /// which a generated client cannot check before sending).
    case limited(Schema, Limits)

    /// OpenAPI 3.0's size keywords: string lengths in characters (Unicode scalars, as the server counts
    /// them), array lengths, and an object's member count.
    struct Limits: Sendable {
        var minLength: Int? = nil
        var maxLength: Int? = nil
        var minItems: Int? = nil
        var maxItems: Int? = nil
        var uniqueItems = false
        var maxProperties: Int? = nil

        var members: [(String, JSONValue)] {
            var members: [(String, JSONValue)] = []
            for (name, value) in [
                ("minLength", minLength), ("maxLength", maxLength), ("minItems", minItems), ("maxItems", maxItems),
                ("maxProperties", maxProperties),
            ] {
                if let value { members.append((name, .integer(Int64(value)))) }
            }
            if uniqueItems { members.append(("uniqueItems", .bool(true))) }
            return members
        }
    }

    /// Base64 (RFC 4648 section 4, padded) bytes.
    static func base64(_ description: String) -> Schema {
        .string(description: description, pattern: "^[A-Za-z0-9+/]*={0,2}$", format: "byte")
    }

    /// Base64 of at most `maxBytes` bytes (exactly, when `exact`): the text's length bounds, padded.
    static func base64(_ description: String, maxBytes: Int, exact: Bool = false) -> Schema {
        let length = 4 * ((maxBytes + 2) / 3)
        return .limited(.base64(description), Limits(minLength: exact ? length : nil, maxLength: length))
    }

    static let timestamp = Schema.string(description: "RFC 3339 UTC", format: "date-time")

    var json: JSONValue {
        switch self {
        case .object(let properties):
            var members: [(String, JSONValue)] = [("type", .string("object"))]
            members.append(
                ("properties", .object(properties.map { property in (property.name, property.withDescription) })))
            let required = properties.filter(\.required).map { JSONValue.string($0.name) }
            if !required.isEmpty { members.append(("required", .array(required))) }
            members.append(("additionalProperties", .bool(false)))
            return .object(members)
        case .string(let description, let pattern, let format, let enumeration):
            var members: [(String, JSONValue)] = [("type", .string("string"))]
            if !description.isEmpty { members.append(("description", .string(description))) }
            if let pattern { members.append(("pattern", .string(pattern))) }
            if let format { members.append(("format", .string(format))) }
            if let enumeration { members.append(("enum", .array(enumeration.map(JSONValue.string)))) }
            return .object(members)
        case .integer(let minimum, let maximum):
            var members: [(String, JSONValue)] = [("type", .string("integer"))]
            if let minimum { members.append(("minimum", .integer(minimum))) }
            if let maximum { members.append(("maximum", .integer(maximum))) }
            return .object(members)
        case .boolean:
            return .object([("type", .string("boolean"))])
        case .array(let items):
            return .object([("type", .string("array")), ("items", items.json)])
        case .reference(let name):
            return .object([("$ref", .string("#/components/schemas/\(name)"))])
        case .oneOf(let options):
            return .object([("oneOf", .array(options.map(\.json)))])
        case .map(let values):
            return .object([("type", .string("object")), ("additionalProperties", values.json)])
        case .nullable(let inner):
            guard case .object(let members) = inner.json else { return inner.json }
            return .object(members + [("nullable", .bool(true))])
        case .limited(let inner, let limits):
            guard case .object(let members) = inner.json else { return inner.json }
            return .object(members + limits.members)
        }
    }

    /// Property names of an object schema.
    var propertyNames: [String] {
        if case .object(let properties) = self { return properties.map(\.name) }
        return []
    }

    /// The schema without its size limits.
    var unlimited: Schema {
        if case .limited(let inner, _) = self { return inner }
        return self
    }
}

extension Schema.Property {
    init(_ name: String, _ schema: Schema, required: Bool = true, _ description: String = "") {
        self.init(name: name, schema: schema, required: required, description: description)
    }

    var withDescription: JSONValue {
        guard !description.isEmpty, case .object(var members) = schema.json else { return schema.json }
        if case .reference = schema {
            return .object([("allOf", .array([schema.json])), ("description", .string(description))])
        }
        members.removeAll { $0.0 == "description" }
        members.append(("description", .string(description)))
        return .object(members)
    }
}
