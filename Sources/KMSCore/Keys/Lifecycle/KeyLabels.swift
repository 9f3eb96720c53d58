/// A change of a key's description and tags (lifecycle-v1 section 4). The
/// values were validated when the request was read (`LabelRules`).
public struct KeyLabels: Sendable, Equatable {
    /// nil: leave as is (generate: `""`).
    public var description: String?
    public var set: [String: String]
    public var remove: [String]

    public static let maxTags = 50

    public init(description: String? = nil, set: [String: String] = [:], remove: [String] = []) {
        self.description = description
        self.set = set
        self.remove = remove
    }

    /// The tags after this change, refused when more than 50.
    public func applied(to tags: [String: String], field: String = "set") throws(KMSError) -> [String: String] {
        var result = tags
        for key in remove { result[key] = nil }
        for (key, value) in set { result[key] = value }
        guard result.count <= Self.maxTags else {
            throw KMSError(.invalidRequest, "a key has at most 50 tags; remove some first", field: field)
        }
        return result
    }
}
