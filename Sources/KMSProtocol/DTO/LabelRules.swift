/// lifecycle-v1 section 4 and rule 9.7: what a key's description and tags
/// may hold, checked when a request is read so that a bad value is the
/// request's `400`, answered before any permission decision.
public enum LabelRules {
    public static let maxDescriptionBytes = 8192
    /// A key's tags, at most; a tag key's and a tag value's length in characters (Unicode scalars); the tag
    /// keys one request may remove.
    public static let maxTags = 50
    public static let maxTagKeyCharacters = 128
    public static let maxTagValueCharacters = 256
    public static let maxTagsRemoved = 1000

    /// 0..8,192 UTF-8 bytes; no C0 control characters but TAB, LF and CR.
    public static func checkDescription(_ text: String, field: String = "description") throws(RequestFieldError) {
        guard text.utf8.count <= maxDescriptionBytes else {
            throw RequestFieldError(field: field, message: "`\(field)` must be at most 8,192 UTF-8 bytes")
        }
        let refused = text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" }
        guard !refused else {
            throw RequestFieldError(
                field: field, message: "`\(field)` must not contain control characters other than tab and line breaks")
        }
    }

    /// Tags to set (field `<setField>.<key>`) and keys to remove (`remove[i]`);
    /// a key in both is refused (field `set`).
    public static func checkTags(_ set: [String: String], remove: [String] = [], setField: String = "set")
        throws(RequestFieldError)
    {
        guard set.count <= maxTags else {
            throw RequestFieldError(field: setField, message: "a key has at most \(maxTags) tags")
        }
        for (key, value) in set.sorted(by: { $0.key.bytesPrecede($1.key) }) {
            try checkTagKey(key, field: "\(setField).\(key)")
            guard value.unicodeScalars.count <= maxTagValueCharacters, !hasControl(value) else {
                throw RequestFieldError(
                    field: "\(setField).\(key)",
                    message: "a tag value must be 0 to \(maxTagValueCharacters) characters without control characters")
            }
        }
        for (index, key) in remove.enumerated() {
            try checkTagKey(key, field: "remove[\(index)]")
            if set[key] != nil {
                throw RequestFieldError(field: "set", message: "tag key '\(key)' is both set and removed; choose one")
            }
        }
    }

    private static func checkTagKey(_ key: String, field: String) throws(RequestFieldError) {
        guard (1...maxTagKeyCharacters).contains(key.unicodeScalars.count), !hasControl(key) else {
            throw RequestFieldError(
                field: field,
                message: "a tag key must be 1 to \(maxTagKeyCharacters) characters without control characters")
        }
        // Bytes, any ASCII case: `hasPrefix` compares characters, and a combining mark after the
        // colon (`aws:\u{301}env`) made one character of `:` and the mark, so the prefix did not match.
        guard !key.utf8.prefix(4).map({ $0 | 0x20 }).elementsEqual("aws:".utf8) else {
            throw RequestFieldError(field: field, message: "tag keys starting with aws: are reserved")
        }
    }

    /// C0, DEL and C1 controls. (Lone surrogates never reach here: the JSON
    /// reader refuses them, naming the member, `set.<key>` or `remove[i]`.)
    private static func hasControl(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }
}
