/// `POST /keys/generate` inner request (lifecycle-v1 adds `description` and `tags`).
public struct GenerateKeyRequest: Codable, StrictDecodable, Equatable {
    public var alias: String?
    public var description: String?
    public var tags: [String: String]?

    public init(alias: String? = nil, description: String? = nil, tags: [String: String]? = nil) {
        self.alias = alias
        self.description = description
        self.tags = tags
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        alias = try reader.optionalString("alias")
        description = try reader.optionalString("description")
        tags = try reader.optionalStringMap("tags")
        if let description { try LabelRules.checkDescription(description) }
        if let tags { try LabelRules.checkTags(tags, setField: "tags") }
    }
}

/// `POST /keys/rotate` inner request: a key id or an alias.
public struct RotateKeyRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String

    public init(keyId: String) { self.keyId = keyId }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
    }
}

/// The inner response of generate and rotate: the version just created.
public struct KeyVersionResponse: Codable, Sendable, Equatable {
    public var keyId: String
    public var version: Int
    public var createdAt: String
    public var status: String

    public init(keyId: String, version: Int, createdAt: String, status: String) {
        self.keyId = keyId
        self.version = version
        self.createdAt = createdAt
        self.status = status
    }
}

/// `GET /keys/{keyId}` inner response, and each item of `GET /keys`.
public struct KeyMetadata: Codable, Sendable, Equatable {
    public struct Version: Codable, Sendable, Equatable {
        public var version: Int
        public var createdAt: String
        public var status: String
        /// Present on every non-active version.
        public var graceUntil: String?

        public init(version: Int, createdAt: String, status: String, graceUntil: String?) {
            self.version = version
            self.createdAt = createdAt
            self.status = status
            self.graceUntil = graceUntil
        }
    }

    public var keyId: String
    /// The first of `aliases`; absent when the key has none.
    public var alias: String?
    public var createdAt: String
    public var activeVersion: Int
    public var versions: [Version]
    // lifecycle-v1 section 5.
    public var state: String = "enabled"
    public var deletionDate: String?
    public var pendingWindowDays: Int?
    /// Always present: an integer, or `null` when the key does not rotate by itself.
    public var rotationPeriodDays: Int?
    public var nextRotationAt: String?
    public var description: String = ""
    public var tags: [String: String] = [:]
    public var aliases: [String] = []
    /// aws-kms-v1 section 4: the same key's AWS `KeyId` (its id's bytes as a UUID).
    public var awsKeyId: String?

    public init(keyId: String, alias: String?, createdAt: String, activeVersion: Int, versions: [Version]) {
        self.keyId = keyId
        self.alias = alias
        self.aliases = alias.map { [$0] } ?? []
        self.createdAt = createdAt
        self.activeVersion = activeVersion
        self.versions = versions
    }

    enum CodingKeys: String, CodingKey {
        case keyId, alias, createdAt, activeVersion, versions, state, deletionDate, pendingWindowDays
        case rotationPeriodDays, nextRotationAt, description, tags, aliases, awsKeyId
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        keyId = try container.decode(String.self, forKey: .keyId)
        alias = try container.decodeIfPresent(String.self, forKey: .alias)
        createdAt = try container.decode(String.self, forKey: .createdAt)
        activeVersion = try container.decode(Int.self, forKey: .activeVersion)
        versions = try container.decode([Version].self, forKey: .versions)
        state = try container.decodeIfPresent(String.self, forKey: .state) ?? "enabled"
        deletionDate = try container.decodeIfPresent(String.self, forKey: .deletionDate)
        pendingWindowDays = try container.decodeIfPresent(Int.self, forKey: .pendingWindowDays)
        rotationPeriodDays = try container.decodeIfPresent(Int.self, forKey: .rotationPeriodDays)
        nextRotationAt = try container.decodeIfPresent(String.self, forKey: .nextRotationAt)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        tags = try container.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        aliases = try container.decodeIfPresent([String].self, forKey: .aliases) ?? alias.map { [$0] } ?? []
        awsKeyId = try container.decodeIfPresent(String.self, forKey: .awsKeyId)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(keyId, forKey: .keyId)
        try container.encodeIfPresent(alias, forKey: .alias)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(activeVersion, forKey: .activeVersion)
        try container.encode(versions, forKey: .versions)
        try container.encode(state, forKey: .state)
        try container.encodeIfPresent(deletionDate, forKey: .deletionDate)
        try container.encodeIfPresent(pendingWindowDays, forKey: .pendingWindowDays)
        try container.encode(rotationPeriodDays, forKey: .rotationPeriodDays)  // null when unset
        try container.encodeIfPresent(nextRotationAt, forKey: .nextRotationAt)
        try container.encode(description, forKey: .description)
        try container.encode(tags, forKey: .tags)
        try container.encode(aliases, forKey: .aliases)
        try container.encodeIfPresent(awsKeyId, forKey: .awsKeyId)
    }
}

/// `GET /keys` inner response; `next` only when more keys follow.
public struct KeyListResponse: Codable, Sendable, Equatable {
    public var keys: [KeyMetadata]
    public var next: String?

    public init(keys: [KeyMetadata], next: String?) {
        self.keys = keys
        self.next = next
    }
}
