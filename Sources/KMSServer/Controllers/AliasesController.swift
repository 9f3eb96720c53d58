import KMSCore
import KMSProtocol

/// `/aliases` (lifecycle-v1 section 3): aliases as their own records, many
/// per key. The permission checks interleave with the lookups in the order
/// rule 9.2 fixes — `400`; `403` on the name; `404 alias_not_found`; `403`
/// on the old key judged without the alias; `403`/`404` on the new key;
/// `409 key_pending_deletion`; `409 alias_in_use` — so the handlers make them.
struct AliasesController: Sendable {
    let keys: KeyRing
    let audit: Auditor

    func register(on routes: inout RouteBuilder) {
        routes.sealed(
            .get, WirePath.aliases, EmptyBody.self, permission: .session,
            doc: RouteDoc(
                tag: "aliases", summary: "List aliases",
                description:
                    "Aliases sorted by bytes, a page at a time; only those of keys the client may read (keys:read); never 403. `keyId` (an id or alias) lists one key's; an unknown or unreadable key lists none.",
                errors: [],
                query: [
                    ("limit", "1 to 1000, default 100"), ("after", "exclusive alias cursor (the previous `next`)"),
                    ("keyId", "only this key's aliases"),
                ])
        ) { _, call throws(KMSError) in
            let query = try ListQuery(query: call.request.uri.query, cursor: "alias", extra: ["keyId"])
            let grants = call.opened.client?.grants
            return try await keys.listAliases(after: query.after, limit: query.limit, keyId: query.extra["keyId"]) {
                names in grants.map { names.allowed(.keysRead, by: $0) } ?? true
            }
        }
        routes.sealed(
            .post, WirePath.aliases, CreateAliasRequest.self, permission: .checkedByHandler(.keysManage),
            doc: RouteDoc(
                tag: "aliases", summary: "Create an alias",
                description:
                    "Names a key (id or alias) with one more alias; a key has at most 50. Needs keys:manage on the alias as a name and on the key, and refuses (403) an alias that would give the client a permission on the key that its grants do not already give there.",
                errors: [.keyNotFound, .keyPendingDeletion, .aliasInUse, .limitReached])
        ) { input, call throws(KMSError) in
            try keys.checkAlias(input.alias)
            try Self.checkPresent(input.keyId)
            try authorize(call, name: input.alias)
            let target = try await keys.aliasTarget(try await authorize(call, key: input.keyId))
            try checkNoGain(call, naming: target, as: input.alias, key: input.keyId)
            let fields = [("alias", input.alias), ("key", input.keyId)]
            return try await audited("alias.create", fields, call) { () throws(KMSError) in
                try await keys.createAlias(input.alias, for: target)
            }
        }
        routes.sealed(
            .post, WirePath.alias, MoveAliasRequest.self, permission: .checkedByHandler(.keysManage),
            doc: RouteDoc(
                tag: "aliases", summary: "Move an alias",
                description:
                    "Points the alias at another key. Needs keys:manage on the alias as a name, on its current key (judged without this alias) and on the new key, and refuses (403) a move that would give the client a permission on the new key that its grants do not already give there. Moving it to the key it names is a no-op. An alias of a UUID's form cannot be moved (400), only deleted.",
                errors: [.aliasNotFound, .keyNotFound, .keyPendingDeletion, .limitReached])
        ) { input, call throws(KMSError) in
            let name = try aliasParameter(call)
            try KeyRing.checkNotUUIDShaped(name, moving: true)
            try Self.checkPresent(input.keyId)
            try authorize(call, name: name)
            return try await Self.againIfRaced { () async throws(KMSError) in
                let current = try await keys.aliasRecord(name)
                try await authorize(call, currentKeyOf: current)
                let target = try await keys.aliasTarget(try await authorize(call, key: input.keyId))
                guard target.keyId != current.keyId else { return KeyRing.body(current) }
                try checkNoGain(call, naming: target, as: name, key: input.keyId)
                let fields = [("alias", name), ("fromKeyId", current.keyId), ("key", input.keyId)]
                return try await audited("alias.move", fields, call) { () throws(KMSError) in
                    try await keys.moveAlias(current, to: target)
                }
            }
        }
        routes.sealed(
            .delete, WirePath.alias, EmptyBody.self, permission: .checkedByHandler(.keysManage),
            doc: RouteDoc(
                tag: "aliases", summary: "Delete an alias",
                description:
                    "Removes the alias; the key is unchanged. Needs keys:manage on the alias as a name and on its key (judged without this alias).",
                errors: [.aliasNotFound])
        ) { _, call throws(KMSError) in
            let name = try aliasParameter(call)
            try authorize(call, name: name)
            try await Self.againIfRaced { () async throws(KMSError) in
                let current = try await keys.aliasRecord(name)
                try await authorize(call, currentKeyOf: current)
                try await audit.durableChange("alias.delete", [("alias", name), ("keyId", current.keyId)], call) {
                    () throws(KMSError) in
                    try await keys.deleteAlias(current)
                } result: { _ in
                    []
                }
            }
            return EmptyBody()
        }
    }

    /// `attempt` again when the alias changed between its read and the write (`KeyRing.againIfAliasChanged`).
    private static func againIfRaced<T>(_ attempt: () async throws(KMSError) -> T) async throws(KMSError) -> T {
        try await KeyRing.againIfAliasChanged(attempt) { $0.isAliasConflict }
    }

    /// An alias change with its durable intent and result entries (the result names the key).
    private func audited(
        _ type: String, _ fields: [(String, String)], _ call: SealedChannel.Call,
        _ change: () async throws(KMSError) -> AliasRecord
    ) async throws(KMSError) -> AliasBody {
        KeyRing.body(try await audit.durableChange(type, fields, call, change) { [("keyId", $0.keyId)] })
    }

    private func aliasParameter(_ call: SealedChannel.Call) throws(KMSError) -> String {
        let name = call.context.parameters.get("alias") ?? ""
        guard KeyIdentifier.isAliasSyntax(name) else {
            throw KMSError(
                .invalidRequest, "`alias` must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", field: "alias")
        }
        return name
    }

    /// `keys:manage` on the alias as a name (no key is looked up).
    private func authorize(_ call: SealedChannel.Call, name: String) throws(KMSError) {
        guard let client = call.opened.client else { return }
        guard !KeyRing.mayManageName(name, grants: client.grants) else { return }
        try deny(
            call, KMSError(.permissionDenied, "permission keys:manage is not granted for alias \(name)", detail: name))
    }

    /// `keys:manage` on the key an alias names now, judged without that alias.
    private func authorize(_ call: SealedChannel.Call, currentKeyOf alias: AliasRecord) async throws(KMSError) {
        guard let client = call.opened.client else { return }
        guard try await !keys.mayManageCurrentKey(of: alias, grants: client.grants) else { return }
        var error = KMSError(
            .permissionDenied, "permission keys:manage is not granted for the key alias \(alias.alias) names",
            detail: alias.alias)
        error.deniedKeyId = alias.keyId
        try deny(call, error)
    }

    /// An empty `keyId` is the body's `400`; a malformed one is judged like
    /// any other name (rule 9.2: `403`/`404` on the new key, after the alias's checks).
    private static func checkPresent(_ keyId: String) throws(KMSError) {
        guard !keyId.isEmpty else { throw KMSError(.invalidRequest, "`keyId` must not be empty", field: "keyId") }
    }

    /// `keys:manage` on a key the client names (identity-v1 section 4: `403`
    /// or `404`); returns the keyId decided on, which the change then uses.
    private func authorize(_ call: SealedChannel.Call, key reference: String) async throws(KMSError) -> String {
        guard let client = call.opened.client else { return reference }
        do {
            return try await KeyAccess.decide(
                .keysManage, on: reference, grants: client.grants,
                resolve: keys.resolveNamesFresh
            ).keyId
        } catch {
            if error.code == .permissionDenied { call.noteDenied(.keysManage, error) }
            throw error
        }
    }

    /// An alias never widens its own client's access (`KeyRing.permissionsGained`).
    private func checkNoGain(
        _ call: SealedChannel.Call, naming target: KeyRecord, as alias: String, key reference: String
    ) throws(KMSError) {
        guard let client = call.opened.client else { return }
        let gained = KeyRing.permissionsGained(naming: target, as: alias, grants: client.grants)
        guard gained.isEmpty else {
            let error = KeyRing.aliasWouldGrant(gained, alias: alias, key: reference, keyId: target.keyId)
            call.noteDenied(gained[0], error)
            throw error
        }
    }

    private func deny(_ call: SealedChannel.Call, _ error: KMSError) throws(KMSError) {
        call.noteDenied(.keysManage, error)
        throw error
    }
}
