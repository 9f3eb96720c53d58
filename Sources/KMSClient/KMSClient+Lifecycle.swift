public import KMSProtocol

/// lifecycle-v1: key state, deletion, rotation schedule, description, tags
/// and aliases. Keys may be named by id or alias.
extension KMSClient {
    public func disableKey(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.disableKey, key, EmptyBody())
    }

    public func enableKey(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.enableKey, key, EmptyBody())
    }

    /// `days` 7...30; nil: the server's default (30).
    public func scheduleKeyDeletion(_ key: String, days: Int? = nil) async throws -> KeyMetadata {
        try await lifecycle(WirePath.scheduleKeyDeletion, key, ScheduleDeletionRequest(pendingWindowDays: days))
    }

    public func cancelKeyDeletion(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.cancelKeyDeletion, key, EmptyBody())
    }

    /// `periodDays` 1...3650, nil to stop automatic rotation.
    public func setRotation(_ key: String, periodDays: Int?) async throws -> KeyMetadata {
        try await lifecycle(WirePath.keyRotationSchedule, key, RotationScheduleRequest(periodDays: periodDays))
    }

    public func describeKey(_ key: String, description: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.keyDescription, key, DescriptionRequest(description: description))
    }

    public func tagKey(_ key: String, set: [String: String] = [:], remove: [String] = []) async throws -> KeyMetadata {
        try await lifecycle(
            WirePath.keyTags, key, TagsRequest(set: set.isEmpty ? nil : set, remove: remove.isEmpty ? nil : remove))
    }

    private func lifecycle(_ pattern: String, _ key: String, _ body: some Encodable & Sendable) async throws
        -> KeyMetadata
    {
        // Idempotent for `call`'s one retry after `unknown_session` (the first send did not run); not
        // repeatable after an unknown outcome: a repeated schedule or cancel is refused `409`.
        try await call(
            "POST", WirePath.target(pattern, ["keyId": try Self.pathSegment(key)]), body: body, idempotent: true)
    }

    public func listAliases(limit: Int? = nil, after: String? = nil, key: String? = nil) async throws
        -> AliasListResponse
    {
        var target = try Self.paged(WirePath.aliases, limit: limit, after: after)
        if let key { target += (target.contains("?") ? "&" : "?") + "keyId=\(try Self.pathSegment(key))" }
        return try await call("GET", target, idempotent: true)
    }

    public func createAlias(_ alias: String, key: String) async throws -> AliasBody {
        try await call("POST", WirePath.aliases, body: CreateAliasRequest(alias: alias, keyId: key), idempotent: false)
    }

    public func moveAlias(_ alias: String, to key: String) async throws -> AliasBody {
        try await call(
            "POST", WirePath.target(WirePath.alias, ["alias": try Self.pathSegment(alias, "an alias")]),
            body: MoveAliasRequest(keyId: key), idempotent: true)
    }

    public func deleteAlias(_ alias: String) async throws {
        let _: EmptyBody = try await call(
            "DELETE", WirePath.target(WirePath.alias, ["alias": try Self.pathSegment(alias, "an alias")]),
            idempotent: false)
    }
}
