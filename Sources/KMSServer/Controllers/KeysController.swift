import Foundation
import KMSCore
import KMSProtocol

/// `/keys/*`: generate, rotate, describe and list managed keys.
struct KeysController: Sendable {
    let keys: KeyRing
    let audit: Auditor

    func register(on routes: inout RouteBuilder) {
        routes.sealed(
            .post, WirePath.generateKey, GenerateKeyRequest.self, permission: .create { $0.alias },
            doc: RouteDoc(
                tag: "keys", summary: "Generate a key",
                description:
                    "Creates an enabled AES-256 key with version 1 (active), optionally with a unique alias, a description and tags. Past KMS_MAX_KEYS keys in the store (10,000 by default), 409 limit_reached.",
                errors: [.aliasInUse, .limitReached])
        ) { input, call throws(KMSError) in
            try keys.checkAlias(input.alias)  // before the intent entry records it
            try await keys.checkKeyRoom()
            let labels = KeyLabels(description: input.description, set: input.tags ?? [:])
            let record = try await audit.keyChange("key.generate", reference: input.alias, call) {
                () throws(KMSError) in
                try await keys.generate(alias: input.alias, labels: labels, policy: nil, roomChecked: true)
            }
            return response(record)
        }
        routes.sealed(
            .post, WirePath.rotateKey, RotateKeyRequest.self, permission: .key(.keysRotate) { input, _ in input.keyId },
            doc: RouteDoc(
                tag: "keys", summary: "Rotate a key",
                description:
                    "Adds a new active version. The previous version decrypts until its grace period (KMS_KEY_GRACE_MS) ends, then is retired. Enabled keys only."
                    + KeyLifecycleController.clockNote,
                errors: [.keyNotFound, .keyDisabled, .keyPendingDeletion, .limitReached, .serverBusy])
        ) { input, call throws(KMSError) in
            try keys.checkReference(input.keyId, field: "keyId")  // before the intent entry records it
            // The key (404 before a clock's 503), its state and version room, then the clock.
            let current = try await keys.resolve(call.key(input.keyId), field: "keyId", fresh: true)
            try await keys.checkRotation(current)
            let record = try await audit.keyChange("key.rotate", reference: input.keyId, call) {
                () throws(KMSError) in try await keys.rotate(call.key(input.keyId), read: current)
            }
            return response(record)
        }
        routes.sealed(
            .get, WirePath.keys, EmptyBody.self, permission: .session,
            doc: RouteDoc(
                tag: "keys", summary: "List keys",
                description:
                    "Keys sorted by id, a page at a time; `next` is present when more follow. With client identity, only the keys the client may read (keys:read); never 403.",
                errors: [],
                query: [
                    ("limit", "1 to 1000, default 100"), ("after", "exclusive key id cursor (the previous `next`)"),
                ])
        ) { _, call throws(KMSError) in
            let query = try ListQuery(query: call.request.uri.query)
            // identity-v1 section 4: only the keys this client may read; never a 403.
            guard let client = call.opened.client else {
                return try await keys.list(after: query.after, limit: query.limit)
            }
            return try await keys.list(after: query.after, limit: query.limit) { record in
                KeyAccess.Names(keyId: record.keyId, aliases: record.aliases).allowed(.keysRead, by: client.grants)
            }
        }
        routes.sealed(
            .get, WirePath.key, EmptyBody.self,
            permission: .key(.keysRead) { _, call in call.context.parameters.get("keyId") },
            doc: RouteDoc(
                tag: "keys", summary: "Describe a key",
                description:
                    "A key's state, schedules, description, tags, aliases and versions with their status (active, grace, retired) and graceUntil. {keyId} may be an alias.",
                errors: [.keyNotFound])
        ) { _, call throws(KMSError) in
            let reference = call.context.parameters.get("keyId") ?? ""
            return keys.metadata(try await keys.resolve(call.key(reference), field: "keyId"))
        }
    }

    private func response(_ record: KeyRecord) -> KeyVersionResponse {
        let active = record.versions.last
        return KeyVersionResponse(
            keyId: record.keyId, version: record.activeVersion,
            createdAt: Timestamp.format(active?.createdAt ?? record.createdAt), status: KeyVersionStatus.active.rawValue
        )
    }
}

/// `GET /keys?limit=&after=`: `limit` 1...1000 (default 100), `after` an
/// exclusive key id cursor; any other parameter is refused.
struct ListQuery {
    var limit = 100
    var after: String?
    /// The values of the route's own parameters (`extra`), e.g. `keyId` of `GET /aliases`.
    var extra: [String: String] = [:]

    /// `cursor` names what `after` holds in messages (a key id, a clientId).
    init(query: String?, cursor: String = "key id", extra names: Set<String> = []) throws(KMSError) {
        guard let query, !query.isEmpty else { return }
        var seen = Set<String>()
        // An empty pair (`?limit=10&`) is no parameter, and an empty `limit` is the default, as a client that
        // fills api-v1's template `?limit=&after=` sends them (a review: both were 400s).
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            // Percent-encoding that does not decode is refused, not read as empty (a review: `after=%zz` started
            // at the beginning).
            guard let name = String(parts[0]).removingPercentEncoding,
                let value = parts.count > 1 ? String(parts[1]).removingPercentEncoding : ""
            else {
                throw KMSError(
                    .invalidRequest, "a query parameter is not percent-encoded UTF-8", field: "query")
            }
            guard seen.insert(name).inserted else {
                throw KMSError(.invalidRequest, "query parameter `\(name)` is repeated", field: name)
            }
            switch name {
            case "limit" where parts.count > 1 && parts[1].isEmpty:
                continue
            case "limit":
                guard value.isDecimalDigits, let number = Int(value),
                    (1...1000).contains(number)
                else {
                    throw KMSError(.invalidRequest, "`limit` must be a whole number from 1 to 1000", field: "limit")
                }
                limit = number
            case "after":
                guard value.utf8.count <= 64, value.utf8.allSatisfy({ ClientToken.isTokenCharacter($0) }) else {
                    throw KMSError(
                        .invalidRequest, "`after` must be a \(cursor) (the previous page's `next`)", field: "after")
                }
                after = value
            case _ where names.contains(name):
                extra[name] = value
            default:
                // Naming every parameter the route takes (a probe: `/aliases` was said to take two of its three).
                let known = ["limit", "after"] + names.sorted()
                throw KMSError(
                    .invalidRequest,
                    "unknown query parameter; use \(known.dropLast().joined(separator: ", ")) and \(known.last ?? "")",
                    field: name.isEmpty ? "query" : name)
            }
        }
    }
}
