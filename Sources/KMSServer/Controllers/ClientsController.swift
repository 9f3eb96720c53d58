import Foundation
import KMSCore
import KMSProtocol

/// `/clients/*` (identity-v1 section 5): enrol devices, change their grants,
/// revoke them, and issue access keys for the SigV4 front door. Every route
/// needs `clients:manage`; every change is audited and fails closed.
struct ClientsController: Sendable {
    let clients: ClientRegistry
    let sessions: SessionManager
    let audit: Auditor

    func register(on routes: inout RouteBuilder) {
        routes.sealed(
            .post, WirePath.clients, AddClientRequest.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Enrol a client",
                description:
                    "Registers a device's Ed25519 public key under a unique name, with grants (keys × permissions). A public key is registered once ever.",
                errors: [.nameInUse, .publicKeyInUse, .limitReached])
        ) { input, call throws(KMSError) in
            guard ClientRecord.isValidName(input.name) else {
                throw KMSError(
                    .invalidRequest, "`name` must be [a-z0-9][a-z0-9._-]{0,62}, not starting with cli_", field: "name")
            }
            guard let publicKey = Base64.decodeStrict(input.publicKey), ClientAuth.isEnrollablePublicKey(publicKey)
            else {
                throw KMSError(
                    .invalidRequest, "`publicKey` must be the base64 of a valid 32-byte Ed25519 public key",
                    field: "publicKey")
            }
            let grants = try Self.grants(input.grants)
            try Self.authorize(call, target: input.name)
            let fields = Grant.addAuditFields(name: input.name, publicKey: publicKey, grants: grants)
            return try await audit.durableChange("client.add", fields, call) { () throws(KMSError) in
                try await clients.add(name: input.name, publicKey: publicKey, grants: grants)
            } result: {
                [("targetClientId", $0.clientId)]
            }.body
        }
        routes.sealed(
            .get, WirePath.clients, EmptyBody.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "List clients",
                description: "Every client, revoked ones included, by clientId a page at a time.", errors: [],
                query: [
                    ("limit", "1 to 1000, default 100"), ("after", "exclusive clientId cursor (the previous `next`)"),
                ])
        ) { _, call throws(KMSError) in
            let query = try ListQuery(query: call.request.uri.query, cursor: "clientId")
            try Self.authorize(call)
            let page = try await clients.page(after: query.after, limit: query.limit)
            return ClientListResponse(clients: page.records.map(\.body), next: page.next)
        }
        routes.sealed(
            .get, WirePath.client, EmptyBody.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Describe a client",
                description: "{client} is a clientId or an active client's name.", errors: [.clientNotFound])
        ) { _, call throws(KMSError) in
            let reference = try Self.reference(call)
            try Self.authorize(call, target: reference)
            return try await clients.resolve(reference).record.body
        }
        routes.sealed(
            .post, WirePath.clientGrants, SetGrantsRequest.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Replace a client's grants",
                description: "Takes effect on the client's next request, on every instance.",
                errors: [.clientNotFound, .clientRevoked, .lastAdmin])
        ) { input, call throws(KMSError) in
            let reference = try Self.reference(call)
            let grants = try Self.grants(input.grants)
            try Self.authorize(call, target: reference)
            let fields = [Self.target(reference), ("grants", Grant.auditText(grants))]
            return try await audit.durableChange("client.grants", fields, call) { () throws(KMSError) in
                try await clients.setGrants(reference, grants)
            } result: {
                Self.outcomeFields($0)
            }.record.body
        }
        routes.sealed(
            .post, WirePath.clientRevoke, EmptyBody.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Revoke a client",
                description:
                    "Final and idempotent: ends the client's sessions at once, revokes its access keys. A client revoking itself gets this answer sealed under the session it ended.",
                errors: [.clientNotFound, .lastAdmin])
        ) { _, call throws(KMSError) in
            let reference = try Self.reference(call)
            try Self.authorize(call, target: reference)
            let record = try await audit.durableChange("client.revoke", [Self.target(reference)], call) {
                () throws(KMSError) in
                try await clients.revoke(reference)
            } result: {
                Self.outcomeFields($0)
            }.record
            // identity-v1 section 3 wants revocation and session deletion as one step; they are
            // two stores here (sessions may live in memory). So a 200 means both are done: if the
            // deletion fails, the answer is its 503 and the revocation stands (a session used
            // meanwhile still ends at admission, sealed), and repeating the revoke (idempotent)
            // finishes it.
            do throws(KMSError) {
                _ = try await sessions.store.deleteSessions(clientId: record.clientId)
            } catch {
                // By clientId: a revoked client's name no longer resolves (and may be enrolled again).
                throw KMSError(
                    .serverBusy,
                    "client \(record.clientId) is revoked, but its sessions could not all be ended yet: "
                        + "repeat POST /clients/\(record.clientId)/revoke", retryAfterSeconds: 5,
                    detail: error.detail ?? error.message)
            }
            return record.body
        }
        routes.sealed(
            .post, WirePath.clientAccessKeys, EmptyBody.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Create an access key",
                description:
                    "An access key id and secret for the SigV4 front door, shown this once (at most 2 active, 100 in all, per client).",
                errors: [.clientNotFound, .clientRevoked, .limitReached])
        ) { _, call throws(KMSError) in
            let reference = try Self.reference(call)
            try Self.authorize(call, target: reference)
            let created = try await audit.durableChange("client.access-key.create", [Self.target(reference)], call) {
                () throws(KMSError) in
                try await clients.createAccessKey(reference)
            } result: {
                [("targetClientId", $0.record.clientId), ("accessKeyId", $0.accessKeyId)]
            }
            let createdAt = created.record.accessKeys.last?.createdAt ?? Date()
            return AccessKeyCreated(
                accessKeyId: created.accessKeyId, secretAccessKey: created.secret,
                createdAt: Timestamp.format(createdAt))
        }
        routes.sealed(
            .post, WirePath.clientAccessKeyRevoke, EmptyBody.self, permission: .clients,
            doc: RouteDoc(
                tag: "clients", summary: "Revoke an access key",
                description: "Idempotent; the key stops working at once.",
                errors: [.clientNotFound, .accessKeyNotFound])
        ) { _, call throws(KMSError) in
            let reference = try Self.reference(call)
            let accessKeyId = call.context.parameters.get("accessKeyId") ?? ""
            guard AccessKeyRecord.isAccessKeyId(accessKeyId) else {
                throw KMSError(.invalidRequest, "not an access key id (AKIA + 16 of A-Z2-7)", field: "accessKeyId")
            }
            try Self.authorize(call, target: reference)
            let fields = [Self.target(reference), ("accessKeyId", accessKeyId)]
            return try await audit.durableChange("client.access-key.revoke", fields, call) {
                () throws(KMSError) in
                try await clients.revokeAccessKey(reference, accessKeyId: accessKeyId)
            } result: {
                [("targetClientId", $0.record.clientId)] + ($0.written ? [] : [("changed", "false")])
            }.record.body
        }
    }

    /// A client change's outcome fields: the record's id and name, and `changed=false` when there was nothing
    /// left to change (a repeat), as a key change's no-op is marked.
    static func outcomeFields(_ outcome: (record: ClientRecord, written: Bool)) -> [(String, String)] {
        [("targetClientId", outcome.record.clientId), ("targetName", outcome.record.name)]
            + (outcome.written ? [] : [("changed", "false")])
    }

    /// The audit field naming the target as the request did (identity-v1 section 7).
    static func target(_ reference: String) -> (String, String) {
        (ClientRecord.isClientId(reference) ? "targetClientId" : "targetName", reference)
    }

    /// `clients:manage` (identity-v1 section 5), after the route's own `400`s.
    /// With `KMS_CLIENT_AUTH=off` any session may (rule 13.3). A denial's entry names the target client as
    /// asked (`target`; an audit review: it named none), the routes on one client, by the key names' rule: a
    /// clientId, or a name of at most `Echo.maxShownLength` bytes; a longer one by its length (any enrolled
    /// client can cause a denial, and a name's grammar admits a lowercase hex secret).
    static func authorize(_ call: SealedChannel.Call, target: String? = nil) throws(KMSError) {
        guard let client = call.opened.client else { return }
        do {
            try KeyAccess.checkClientsManage(grants: client.grants)
        } catch {
            call.noteDenied(.clientsManage, error, target: target.map { Self.target(Auditor.shownClient($0)) })
            throw error
        }
    }

    /// `{client}`: a clientId or a name, by grammar (13.7: `field` is `client`).
    static func reference(_ call: SealedChannel.Call) throws(KMSError) -> String {
        let reference = call.context.parameters.get("client") ?? ""
        guard ClientRecord.isClientId(reference) || ClientRecord.isValidName(reference) else {
            throw KMSError(.invalidRequest, "not a clientId (cli_…) or a client name", field: "client")
        }
        return reference
    }

    static func grants(_ bodies: [GrantBody]) throws(KMSError) -> [Grant] {
        do {
            return try Grant.validate(bodies)
        } catch {
            throw KMSError.invalidRequest(error)
        }
    }
}
