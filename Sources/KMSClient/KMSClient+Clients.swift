public import Foundation
public import KMSProtocol

/// identity-v1: who this session is, and the `/clients` API (needs `clients:manage`).
extension KMSClient {
    /// `GET /session`: this session and its client, as the server reads it now.
    public func whoami() async throws -> SessionInfoResponse {
        try await call("GET", WirePath.session, idempotent: true)
    }

    /// Enrols a device by its Ed25519 public key (32 raw bytes) with its grants; its key exchanges are
    /// then signed by the private key, which never leaves the device.
    public func addClient(name: String, publicKey: Data, grants: [GrantBody]) async throws -> ClientBody {
        try await call(
            "POST", WirePath.clients,
            body: AddClientRequest(name: name, publicKey: Base64.encode(publicKey), grants: grants), idempotent: false)
    }

    /// One page of clients, revoked ones included.
    public func listClients(limit: Int? = nil, after: String? = nil) async throws -> ClientListResponse {
        try await call("GET", try Self.paged(WirePath.clients, limit: limit, after: after), idempotent: true)
    }

    /// `client`: a clientId or an active client's name.
    public func client(_ client: String) async throws -> ClientBody {
        try await call("GET", try clientPath(WirePath.client, client), idempotent: true)
    }

    /// Replaces the client's grants (not a merge): applies to its next request, live sessions included.
    public func setGrants(_ client: String, _ grants: [GrantBody]) async throws -> ClientBody {
        try await call(
            "POST", try clientPath(WirePath.clientGrants, client), body: SetGrantsRequest(grants: grants),
            idempotent: true)
    }

    /// Revokes the client for good: its sessions and access keys stop at once (a lost phone is this
    /// call, not a rotation of every key).
    public func revokeClient(_ client: String) async throws -> ClientBody {
        try await call("POST", try clientPath(WirePath.clientRevoke, client), body: EmptyBody(), idempotent: true)
    }

    /// An AWS access key for the client (the AWS door, docs/aws.md): the answer holds its secret, shown
    /// this once; store it where the AWS SDK reads it.
    public func createAccessKey(_ client: String) async throws -> AccessKeyCreated {
        try await call("POST", try clientPath(WirePath.clientAccessKeys, client), body: EmptyBody(), idempotent: false)
    }

    /// Revokes one of the client's AWS access keys.
    public func revokeAccessKey(_ client: String, accessKeyId: String) async throws -> ClientBody {
        let target = WirePath.target(
            WirePath.clientAccessKeyRevoke,
            [
                "client": try Self.pathSegment(client, "a client id or name", namesKey: false),
                "accessKeyId": try Self.pathSegment(accessKeyId, "an access key id", namesKey: false),
            ])
        return try await call("POST", target, body: EmptyBody(), idempotent: true)
    }

    private func clientPath(_ pattern: String, _ client: String) throws -> String {
        WirePath.target(pattern, ["client": try Self.pathSegment(client, "a client id or name", namesKey: false)])
    }
}
