import KMSProtocol

/// A change of a key's description and tags (lifecycle-v1 section 4). The
/// values were validated when the request was read (`LabelRules`).
public struct KeyLabels: Sendable, Equatable {
    /// nil: leave as is (generate: `""`).
    public var description: String?
    public var set: [String: String]
    public var remove: [String]

    public static let maxTags = LabelRules.maxTags

    public init(description: String? = nil, set: [String: String] = [:], remove: [String] = []) {
        self.description = description
        self.set = set
        self.remove = remove
    }

    /// The tags after this change, refused when more than 50, or when a key
    /// to set or remove is canonically equivalent to a stored one but not the
    /// same bytes (`K` and the Kelvin sign U+212A): a dictionary takes them
    /// for one key, so a `set` kept the stored key's bytes with the new value
    /// and a `remove` removed the other key, each audited under a key that
    /// was not changed (a review).
    public func applied(to tags: [String: String], field: String = "set") throws(KMSError) -> [String: String] {
        let named =
            set.keys.sorted { $0.bytesPrecede($1) }.map { ($0, "set.\($0)") }
            + remove.enumerated().map { ($0.element, "remove[\($0.offset)]") }
        for (key, keyField) in named {
            if let stored = tags.keyReadingSame(as: key) {
                throw KMSError(
                    .invalidRequest,
                    "tag key '\(key)' is written differently from the key's tag '\(stored)' but reads the same; use that one's exact text",
                    field: keyField)
            }
        }
        var result = tags
        for key in remove { result[key] = nil }
        for (key, value) in set { result[key] = value }
        guard result.count <= Self.maxTags else {
            throw KMSError(.invalidRequest, "a key has at most 50 tags; remove some first", field: field)
        }
        return result
    }
}
