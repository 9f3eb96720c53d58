/// lifecycle-v1 request and response bodies (inner, sealed).

/// `POST /keys/{keyId}/schedule-deletion`: `pendingWindowDays` 7..30, default 30.
public struct ScheduleDeletionRequest: Codable, StrictDecodable, Equatable {
    public static let range: ClosedRange<Int64> = 7...30
    public var pendingWindowDays: Int?

    public init(pendingWindowDays: Int? = nil) { self.pendingWindowDays = pendingWindowDays }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        pendingWindowDays = try reader.optionalInteger("pendingWindowDays", in: Self.range).map { Int($0) }
    }
}

/// `POST /keys/{keyId}/rotation`: `periodDays` 1..3650, or `null` to stop.
public struct RotationScheduleRequest: Codable, StrictDecodable, Equatable {
    public var periodDays: Int?

    public init(periodDays: Int?) { self.periodDays = periodDays }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        switch reader.take("periodDays") {
        case nil:
            throw RequestFieldError(
                field: "periodDays", message: "`periodDays` is required (a number of days, or null)")
        case .null?: periodDays = nil
        case .integer(let days)? where (1...3650).contains(days): periodDays = Int(days)
        default:
            throw RequestFieldError(
                field: "periodDays", message: "`periodDays` must be a whole number from 1 to 3650, or null")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(periodDays, forKey: .periodDays)  // null clears: it must be sent
    }

    enum CodingKeys: String, CodingKey { case periodDays }
}

/// `POST /keys/{keyId}/description`.
public struct DescriptionRequest: Codable, StrictDecodable, Equatable {
    public var description: String

    public init(description: String) { self.description = description }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        description = try reader.string("description")
        try LabelRules.checkDescription(description)
    }
}

/// `POST /keys/{keyId}/tags`: `set` overwrites, `remove` deletes (absent keys: no-op).
public struct TagsRequest: Codable, StrictDecodable, Equatable {
    public var set: [String: String]?
    public var remove: [String]?

    public init(set: [String: String]? = nil, remove: [String]? = nil) {
        self.set = set
        self.remove = remove
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        set = try reader.optionalStringMap("set")
        remove = try reader.optionalStringArray("remove", maxCount: LabelRules.maxTagsRemoved)
        try LabelRules.checkTags(set ?? [:], remove: remove ?? [])
    }
}

/// `POST /aliases`.
public struct CreateAliasRequest: Codable, StrictDecodable, Equatable {
    public var alias: String
    public var keyId: String

    public init(alias: String, keyId: String) {
        self.alias = alias
        self.keyId = keyId
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        alias = try reader.string("alias")
        keyId = try reader.string("keyId")
    }
}

/// `POST /aliases/{alias}`: the key the alias should name.
public struct MoveAliasRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String

    public init(keyId: String) { self.keyId = keyId }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
    }
}

/// An alias as the API shows it.
public struct AliasBody: Codable, Sendable, Equatable {
    public var alias: String
    public var keyId: String
    public var createdAt: String
    public var updatedAt: String

    public init(alias: String, keyId: String, createdAt: String, updatedAt: String) {
        self.alias = alias
        self.keyId = keyId
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `GET /aliases` inner response; `next` only when more follow.
public struct AliasListResponse: Codable, Sendable, Equatable {
    public var aliases: [AliasBody]
    public var next: String?

    public init(aliases: [AliasBody], next: String?) {
        self.aliases = aliases
        self.next = next
    }
}
