public import Foundation

/// A client as stored: the record sealed by the master key, and lookup hints
/// beside it. The hints serve lookups and the registry's constraints; the
/// registry checks every hint against the opened record, and a record that
/// does not open counts as revoked (identity-v1 section 1).
public struct StoredClient: Sendable, Equatable, Codable {
    public let clientId: String
    public var name: String
    public var fingerprint: String
    public var active: Bool
    /// Active and holding `clients:manage`: what the last-admin rule counts.
    public var admin: Bool
    /// The client's active access keys (for the SigV4 front door's lookup).
    public var accessKeyIds: [String]
    /// The `ClientRecord`, sealed (AAD `kms-v1/secret/client/<clientId>`).
    public var sealed: Data
    /// Bumped by every stored change (compare-and-set).
    public var revision: Int

    public init(
        clientId: String, name: String, fingerprint: String, active: Bool, admin: Bool, accessKeyIds: [String],
        sealed: Data, revision: Int = 0
    ) {
        self.clientId = clientId
        self.name = name
        self.fingerprint = fingerprint
        self.active = active
        self.admin = admin
        self.accessKeyIds = accessKeyIds
        self.sealed = sealed
        self.revision = revision
    }
}

/// The outcome of a compare-and-set `ClientStore.update`.
public enum ClientUpdate: Sendable, Equatable {
    case updated(StoredClient)
    /// The stored revision was not the expected one; nothing was stored.
    case conflict
}

/// Where enrolled clients live (identity-v1 sections 1 and 5).
///
/// Contract, checked by the conformance suite for every implementation:
/// - `add` refuses, in this order: `name_in_use` (an active client has the
///   name), `public_key_in_use` (any record, revoked included, has the
///   fingerprint), `limit_reached` (`ClientLimits`). With `onlyIfEmpty` it
///   stores nothing and returns false when any record exists (bootstrap:
///   one instance wins).
/// - `update` is compare-and-set on `revision` (stored as revision + 1), and
///   refuses `last_admin` when no active admin would remain, atomically with
///   the change; an active name must stay unique.
/// - `client(name:)` finds active clients only; `list` is by clientId, `after`
///   exclusive. A write has reached stable storage when the call returns.
public protocol ClientStore: Sendable {
    func client(id: String) async throws(KMSError) -> StoredClient?
    func client(name: String) async throws(KMSError) -> StoredClient?
    func client(fingerprint: String) async throws(KMSError) -> StoredClient?
    func client(accessKeyId: String) async throws(KMSError) -> StoredClient?
    func list(after: String?, limit: Int) async throws(KMSError) -> [StoredClient]
    @discardableResult
    func add(_ client: StoredClient, onlyIfEmpty: Bool) async throws(KMSError) -> Bool
    func update(_ client: StoredClient, expectedRevision: Int) async throws(KMSError) -> ClientUpdate
}

/// The registry's bounds (identity-v1 section 5): a personal KMS enrolling
/// ten devices a week reaches the record limit in twenty years.
public enum ClientLimits {
    public static let activeClients = 1_000
    /// Revoked records count: they are kept for the audit log.
    public static let records = 10_000
    public static let activeAccessKeys = 2
    public static let accessKeys = 100
}

extension KMSError {
    public static func nameInUse(_ name: String) -> KMSError {
        KMSError(.nameInUse, "an active client is named \(name); choose another name", field: "name")
    }
    public static let publicKeyInUse = KMSError(
        .publicKeyInUse, "this public key was registered before; a key is registered once ever", field: "publicKey")
    public static let clientLimitReached = KMSError(
        .limitReached,
        "the registry holds \(ClientLimits.activeClients) active clients or \(ClientLimits.records) records")
    public static let lastAdmin = KMSError(
        .lastAdmin, "no active client would keep clients:manage; grant it to another client first")
}

/// The constraints of `ClientStore` over an in-memory table: the in-memory
/// and file stores share it; the PostgreSQL store says the same in SQL.
struct ClientTable: Sendable {
    private(set) var clients: [String: StoredClient] = [:]

    init(_ clients: [StoredClient] = []) {
        for client in clients { self.clients[client.clientId] = client }
    }

    func client(name: String) -> StoredClient? { clients.values.first { $0.active && $0.name == name } }
    func client(fingerprint: String) -> StoredClient? { clients.values.first { $0.fingerprint == fingerprint } }
    func client(accessKeyId: String) -> StoredClient? {
        clients.values.first { $0.accessKeyIds.contains(accessKeyId) }
    }

    func list(after: String?, limit: Int) -> [StoredClient] {
        let ids = clients.keys.filter { after == nil || $0 > after ?? "" }.sorted().prefix(max(0, limit))
        return ids.compactMap { clients[$0] }
    }

    /// Checks and adds; false (nothing stored) when `onlyIfEmpty` and not empty.
    mutating func add(_ client: StoredClient, onlyIfEmpty: Bool) throws(KMSError) -> Bool {
        if onlyIfEmpty, !clients.isEmpty { return false }
        guard clients[client.clientId] == nil else { throw KMSError.internal("duplicate client id") }
        if client.active, self.client(name: client.name) != nil { throw KMSError.nameInUse(client.name) }
        guard self.client(fingerprint: client.fingerprint) == nil else { throw KMSError.publicKeyInUse }
        guard clients.count < ClientLimits.records,
            clients.values.filter(\.active).count < ClientLimits.activeClients || !client.active
        else { throw KMSError.clientLimitReached }
        var stored = client
        stored.revision = 1
        clients[client.clientId] = stored
        return true
    }

    mutating func update(_ client: StoredClient, expectedRevision: Int) throws(KMSError) -> ClientUpdate {
        guard let current = clients[client.clientId] else { throw KMSError.internal("update of a missing client") }
        guard current.revision == expectedRevision else { return .conflict }
        if client.active, let other = self.client(name: client.name), other.clientId != client.clientId {
            throw KMSError.nameInUse(client.name)
        }
        if current.admin, !client.admin, !clients.values.contains(where: { $0.admin && $0.clientId != client.clientId })
        {
            throw KMSError.lastAdmin
        }
        var stored = client
        stored.revision = expectedRevision + 1
        clients[client.clientId] = stored
        return .updated(stored)
    }
}
