import Foundation

/// Writing a `JSONValue` back out (used for generated documents such as the OpenAPI JSON).
extension JSONValue {
    /// Compact or indented JSON text; members keep their order.
    public func serialized(indent: Int? = nil) -> String {
        guard indent != nil else { return String(decoding: compactBytes(), as: UTF8.self) }
        var out = ""
        write(into: &out, indent: indent, level: 0)
        return out
    }

    /// Compact JSON as bytes (the audit log writes one line per entry this way).
    public func compactBytes() -> [UInt8] {
        var json = JSONBytes()
        write(to: &json)
        return json.bytes
    }

    func write(to json: inout JSONBytes) {
        switch self {
        case .null: json.literal("null")
        case .bool(let value): json.literal(value ? "true" : "false")
        case .integer(let value): json.integer(value)
        case .number(let text): json.literal(text)
        case .string(let text): json.string(text)
        case .array(let items):
            json.beginArray()
            for item in items { item.write(to: &json) }
            json.endArray()
        case .object(let members):
            json.beginObject()
            for (key, value) in members {
                json.key(key)
                value.write(to: &json)
            }
            json.endObject()
        }
    }

    private func write(into out: inout String, indent: Int?, level: Int) {
        let newline = indent == nil ? "" : "\n"
        let pad = { (depth: Int) in String(repeating: " ", count: (indent ?? 0) * depth) }
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .integer(let value): out += String(value)
        case .number(let text): out += text
        case .string(let text): out += Self.quote(text)
        case .array(let items):
            guard !items.isEmpty else { return out += "[]" }
            out += "[" + newline
            for (index, item) in items.enumerated() {
                out += pad(level + 1)
                item.write(into: &out, indent: indent, level: level + 1)
                out += (index < items.count - 1 ? "," : "") + newline
            }
            out += pad(level) + "]"
        case .object(let members):
            guard !members.isEmpty else { return out += "{}" }
            out += "{" + newline
            for (index, (key, value)) in members.enumerated() {
                out += pad(level + 1) + Self.quote(key) + (indent == nil ? ":" : ": ")
                value.write(into: &out, indent: indent, level: level + 1)
                out += (index < members.count - 1 ? "," : "") + newline
            }
            out += pad(level) + "}"
        }
    }

    /// `text` as a JSON string literal (also for files laid out by hand, such
    /// as key records): the one escaper, `JSONBytes`'s.
    public static func quote(_ text: String) -> String {
        var json = JSONBytes(capacity: text.utf8.count + 2)
        json.string(text)
        return String(decoding: json.bytes, as: UTF8.self)
    }
}
