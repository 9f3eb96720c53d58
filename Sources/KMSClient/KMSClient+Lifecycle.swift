public import KMSProtocol

/// lifecycle-v1: key state, deletion, rotation schedule, description, tags
/// and aliases. Keys may be named by id or alias. The state changes are made once more only when the
/// server said the session was gone (it ran nothing); an answer lost on the way is `outcomeUnknown`.
extension KMSClient {
    /// Stops every use of the key (encrypt and decrypt alike) until `enableKey`: the first thing to do
    /// with a key that may be compromised, and undoable, unlike deletion.
    public func disableKey(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.disableKey, key, EmptyBody())
    }

    /// Allows a disabled key again.
    public func enableKey(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.enableKey, key, EmptyBody())
    }

    /// Deletes the key and every version after `days` (7...30; nil: the server's default, 30); until
    /// then it can be cancelled and nothing may use it. Ciphertexts under it cannot be decrypted after,
    /// except by restoring a backup made before (lifecycle-v1: backups keep it wrapped).
    public func scheduleKeyDeletion(_ key: String, days: Int? = nil) async throws -> KeyMetadata {
        try await lifecycle(WirePath.scheduleKeyDeletion, key, ScheduleDeletionRequest(pendingWindowDays: days))
    }

    /// Cancels a scheduled deletion; the key stays disabled until `enableKey`, a second deliberate act.
    public func cancelKeyDeletion(_ key: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.cancelKeyDeletion, key, EmptyBody())
    }

    /// Rotates the key every `periodDays` (1...3650) by the server's scheduler; nil stops it.
    public func setRotation(_ key: String, periodDays: Int?) async throws -> KeyMetadata {
        try await lifecycle(WirePath.keyRotationSchedule, key, RotationScheduleRequest(periodDays: periodDays))
    }

    /// Replaces the key's description (free text for people; never a secret: it is in every listing).
    public func describeKey(_ key: String, description: String) async throws -> KeyMetadata {
        try await lifecycle(WirePath.keyDescription, key, DescriptionRequest(description: description))
    }

    /// Sets and removes tags in one change (at most 50 after it).
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

    /// One page of aliases, of one key when `key` is given.
    public func listAliases(limit: Int? = nil, after: String? = nil, key: String? = nil) async throws
        -> AliasListResponse
    {
        var target = try Self.paged(WirePath.aliases, limit: limit, after: after)
        if let key { target += (target.contains("?") ? "&" : "?") + "keyId=\(try Self.pathSegment(key))" }
        return try await call("GET", target, idempotent: true)
    }

    /// A new alias for a key; refused `alias_in_use` when the name is taken (this call is not repeated).
    public func createAlias(_ alias: String, key: String) async throws -> AliasBody {
        try await call("POST", WirePath.aliases, body: CreateAliasRequest(alias: alias, keyId: key), idempotent: false)
    }

    /// Points an existing alias at another key: grants written for the alias follow it at once.
    public func moveAlias(_ alias: String, to key: String) async throws -> AliasBody {
        try await call(
            "POST", WirePath.target(WirePath.alias, ["alias": try Self.pathSegment(alias, "an alias")]),
            body: MoveAliasRequest(keyId: key), idempotent: true)
    }

    /// Removes an alias (the key stays).
    public func deleteAlias(_ alias: String) async throws {
        let _: EmptyBody = try await call(
            "DELETE", WirePath.target(WirePath.alias, ["alias": try Self.pathSegment(alias, "an alias")]),
            idempotent: false)
    }
}
