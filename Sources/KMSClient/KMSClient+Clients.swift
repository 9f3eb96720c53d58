public import Foundation
public import KMSProtocol

/// identity-v1: who this session is, and the `/clients` API (needs `clients:manage`).
extension KMSClient {
    /// `GET /session`: this session and its client, as the server reads it now.
    public func whoami() async throws -> SessionInfoResponse {
        try await call("GET", WirePath.session, idempotent: true)
    }

    public func addClient(name: String, publicKey: Data, grants: [GrantBody]) async throws -> ClientBody {
        try await call(
            "POST", WirePath.clients,
            body: AddClientRequest(name: name, publicKey: Base64.encode(publicKey), grants: grants), idempotent: false)
    }

    public func listClients(limit: Int? = nil, after: String? = nil) async throws -> ClientListResponse {
        try await call("GET", try Self.paged(WirePath.clients, limit: limit, after: after), idempotent: true)
    }

    /// `client`: a clientId or an active client's name.
    public func client(_ client: String) async throws -> ClientBody {
        try await call("GET", try clientPath(WirePath.client, client), idempotent: true)
    }

    public func setGrants(_ client: String, _ grants: [GrantBody]) async throws -> ClientBody {
        try await call(
            "POST", try clientPath(WirePath.clientGrants, client), body: SetGrantsRequest(grants: grants),
            idempotent: true)
    }

    public func revokeClient(_ client: String) async throws -> ClientBody {
        try await call("POST", try clientPath(WirePath.clientRevoke, client), body: EmptyBody(), idempotent: true)
    }

    public func createAccessKey(_ client: String) async throws -> AccessKeyCreated {
        try await call("POST", try clientPath(WirePath.clientAccessKeys, client), body: EmptyBody(), idempotent: false)
    }

    public func revokeAccessKey(_ client: String, accessKeyId: String) async throws -> ClientBody {
        let target = WirePath.target(
            WirePath.clientAccessKeyRevoke,
            [
                "client": try Self.pathSegment(client, "a client id or name"),
                "accessKeyId": try Self.pathSegment(accessKeyId, "an access key id"),
            ])
        return try await call("POST", target, body: EmptyBody(), idempotent: true)
    }

    private func clientPath(_ pattern: String, _ client: String) throws -> String {
        WirePath.target(pattern, ["client": try Self.pathSegment(client, "a client id or name")])
    }
}
