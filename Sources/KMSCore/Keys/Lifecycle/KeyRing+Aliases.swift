import Foundation
public import KMSProtocol

/// Aliases as their own records (lifecycle-v1 section 3 and rules 9.2, 9.3):
/// the checks of the routes, in the contract's order, with permission
/// decisions passed in so the core stays free of sessions.
extension KeyRing {
    public static let maxAliasesPerKey = 50

    /// The alias record `name` names; `404 alias_not_found` when none.
    public func aliasRecord(_ name: String) async throws(KMSError) -> AliasRecord {
        guard KeyIdentifier.isAliasSyntax(name), let record = try await store.alias(name) else {
            throw KMSError.aliasNotFound(name)
        }
        return record
    }

    /// Rule 9.2, for both doors: `keys:manage` on the alias as a name.
    public static func mayManageName(_ name: String, grants: [Grant]) -> Bool {
        grants.contains { $0.allows(.keysManage, name: name) }
    }

    /// Rule 9.2, for both doors: `keys:manage` on the key `alias` names now,
    /// judged without that alias (by its keyId and its other aliases).
    public func mayManageCurrentKey(of alias: AliasRecord, grants: [Grant]) async throws(KMSError) -> Bool {
        let names =
            try await resolveNames(alias.keyId, fresh: true) ?? KeyAccess.Names(keyId: alias.keyId, aliases: [])
        return names.without(alias.alias).allowed(.keysManage, by: grants)
    }

    /// The key permissions naming `target` `alias` would give: those `grants`
    /// list for `alias` as a name but not for the key by its keyId and other
    /// aliases. Alias grants follow the alias (identity-v1 section 4), so
    /// without this check `keys:manage` on a key and a permission on a name
    /// gave that permission on the key: a review decrypted with a key it held
    /// only `keys:manage` on, by naming it `app-x` under its `app-*` decrypt
    /// grant. Both doors refuse an alias create or move that gains anything
    /// (`403`, docs/identity.md); `keys:create` is about new keys, and
    /// `clients:manage` comes only with `*`, so neither is counted.
    public static func permissionsGained(naming target: KeyRecord, as alias: String, grants: [Grant]) -> [Permission] {
        // All of the key's names: an alias that already names the key brings nothing (its create is then `409 alias_in_use`).
        let names = KeyAccess.Names(keyId: target.keyId, aliases: target.aliases)
        return Permission.allCases.filter { permission in
            permission != .keysCreate && permission != .clientsManage
                && grants.contains { $0.allows(permission, name: alias) } && !names.allowed(permission, by: grants)
        }
    }

    /// The refusal of an alias that would widen its client's access; names
    /// the key as the request gave it, which is also what its
    /// `permission.denied` entry records as `key` (with the first permission gained).
    public static func aliasWouldGrant(
        _ gained: [Permission], alias: String, key reference: String, keyId: String? = nil
    ) -> KMSError {
        var error = KMSError(
            .permissionDenied,
            "alias \(alias) would give this client \(gained.map(\.rawValue).joined(separator: ", ")) on key \(reference), which its grants do not give on that key",
            detail: reference)
        error.deniedKeyId = keyId
        return error
    }

    /// A key that may take an alias: exists (`404`), not pending deletion (`409`).
    public func aliasTarget(_ reference: String) async throws(KMSError) -> KeyRecord {
        let record = try await resolve(reference, field: "keyId", fresh: true)
        guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
        return record
    }

    /// Creates `alias` for `target` (already checked by `aliasTarget`).
    public func createAlias(_ alias: String, for target: KeyRecord) async throws(KMSError) -> AliasRecord {
        try checkAlias(alias)
        guard target.aliases.count < Self.maxAliasesPerKey else {
            throw KMSError(.limitReached, "a key has at most 50 aliases; delete one first", field: "alias")
        }
        let now = clock.now()
        let record = AliasRecord(alias: alias, keyId: target.keyId, createdAt: now, updatedAt: now)
        try await store.createAlias(record)
        return record
    }

    /// Points `alias` (now `current`) at `target`; moving it to the key it
    /// already names is a no-op. A concurrent change of the alias throws `aliasChanged`, which the doors
    /// answer by reading the alias again (`againIfAliasChanged`).
    public func moveAlias(_ current: AliasRecord, to target: KeyRecord) async throws(KMSError) -> AliasRecord {
        guard current.keyId != target.keyId else { return current }
        guard target.aliases.count < Self.maxAliasesPerKey else {
            throw KMSError(.limitReached, "a key has at most 50 aliases; delete one first", field: "alias")
        }
        let now = clock.now()
        guard try await store.moveAlias(current.alias, expectedKeyId: current.keyId, to: target.keyId, at: now) else {
            throw Self.aliasChanged
        }
        var moved = current
        moved.keyId = target.keyId
        moved.updatedAt = now
        return moved
    }

    public func deleteAlias(_ current: AliasRecord) async throws(KMSError) {
        guard try await store.deleteAlias(current.alias, expectedKeyId: current.keyId) else { throw Self.aliasChanged }
    }

    /// A page of aliases, `including` deciding which keys are readable.
    public func listAliases(
        after: String?, limit: Int, keyId: String?, including: @Sendable (KeyAccess.Names) -> Bool
    ) async throws(KMSError) -> AliasListResponse {
        var key: String?
        if let keyId {
            // Rule 9.3: an unknown or unreadable key lists nothing, never 403.
            guard let names = try await resolveNames(keyId), including(names) else {
                return AliasListResponse(aliases: [], next: nil)
            }
            key = names.keyId
        }
        var page: [AliasRecord] = []
        var cursor = after
        var more = false
        var readable: [String: Bool] = [:]
        scan: while true {
            let batch = try await store.listAliases(after: cursor, limit: max(limit + 1, 100), keyId: key)
            for alias in batch {
                if readable[alias.keyId] == nil {
                    readable[alias.keyId] =
                        try await store.key(id: alias.keyId).map { record in
                            including(KeyAccess.Names(keyId: record.keyId, aliases: record.aliases))
                        } ?? false
                }
                guard readable[alias.keyId] == true else { continue }
                if page.count == limit {
                    more = true
                    break scan
                }
                page.append(alias)
            }
            guard batch.count == max(limit + 1, 100), let last = batch.last else { break }
            cursor = last.alias
        }
        return AliasListResponse(aliases: page.map(Self.body), next: more ? page.last?.alias : nil)
    }

    public static func body(_ record: AliasRecord) -> AliasBody {
        AliasBody(
            alias: record.alias, keyId: record.keyId, createdAt: Timestamp.format(record.createdAt),
            updatedAt: Timestamp.format(record.updatedAt))
    }

    /// Runs `attempt` (read the alias, check, change it conditionally) again when it fails
    /// because the alias changed between its read and the write (`changed` says which errors
    /// are that, as each door sees them): a move that lost to an identical move is then the no-op
    /// `200` of rule 9.3, one that lost to a delete `404 alias_not_found`, and a delete that lost
    /// to a move is judged on the key the alias names now (a review: concurrent changes on two
    /// instances answered `503 server_busy`, which section 3 does not list). The lost attempt's
    /// audit entries stay (its intent, and its `failure`). After `aliasRaceAttempts` losses in a
    /// row the last error stands.
    public static func againIfAliasChanged<T, E: Error>(
        _ attempt: () async throws(E) -> T, changed: (E) -> Bool
    ) async throws(E) -> T {
        for _ in 1..<aliasRaceAttempts {
            do {
                return try await attempt()
            } catch  where changed(error) {
                continue
            }
        }
        return try await attempt()
    }

    public static let aliasRaceAttempts = 8

    /// The alias was moved or deleted between its read and the conditional write (by another
    /// request, perhaps on another instance). The doors read it again and decide anew
    /// (`againIfAliasChanged`); only a change that keeps losing answers this `503`.
    public static let aliasChanged: KMSError = {
        var error = KMSError(
            .serverBusy, "the alias changed concurrently; read it again and retry", retryAfterSeconds: 1,
            detail: "alias conflict")
        error.cause = .aliasConflict
        return error
    }()
}
