import Crypto
public import Foundation
import KMSProtocol
import Synchronization

/// The client registry of identity-v1 without HTTP: records sealed by the
/// master key in a `ClientStore`, the lookups a key exchange and a sealed
/// request need, the management operations of section 5 and the bootstrap of
/// section 6.
///
/// Every hint beside a sealed record is checked against the opened record;
/// a record that does not open, or disagrees with its hints, counts as
/// revoked: a database writer without the master key can deny a client, not
/// forge or move one.
public struct ClientRegistry: Sendable {
    public let store: any ClientStore
    let masterKey: MasterKey
    let clock: any KMSClock

    /// Records opened for sealed requests, by clientId, with the exact row they
    /// came from: an identical row needs no second AES-GCM open and JSON decode.
    private let opened = OpenedClients()

    /// A sealed record opened when a key exchange names no active client, so
    /// that an unknown or revoked key costs the same work as an enrolled one.
    private let decoy: StoredClient?

    public init(store: any ClientStore, masterKey: MasterKey, clock: any KMSClock) {
        self.store = store
        self.masterKey = masterKey
        self.clock = clock
        let sample = ClientRecord(
            clientId: ClientRecord.newClientId(), name: "decoy", publicKey: Data(count: 32), grants: [.everything],
            createdAt: Date())
        decoy = try? Self.seal(sample, masterKey: masterKey, revision: 0)
    }

    // MARK: Sealing

    static func aad(_ clientId: String) -> String { "kms-v1/secret/client/\(clientId)" }

    /// The stored form of `record`: sealed, with its hints.
    func seal(_ record: ClientRecord, revision: Int = 0) throws(KMSError) -> StoredClient {
        try Self.seal(record, masterKey: masterKey, revision: revision)
    }

    static func seal(_ record: ClientRecord, masterKey: MasterKey, revision: Int) throws(KMSError) -> StoredClient {
        let body: Data
        do {
            body = try JSONEncoder().encode(SealedClient(record))
        } catch {
            throw KMSError.internal("cannot encode a client record")
        }
        return StoredClient(
            clientId: record.clientId, name: record.name, fingerprint: record.fingerprint, active: record.isActive,
            admin: record.isAdmin, accessKeyIds: record.accessKeys.filter { $0.revokedAt == nil }.map(\.accessKeyId),
            sealed: try masterKey.wrap(body, aad: Self.aad(record.clientId)), revision: revision)
    }

    /// The record in `stored`, or nil when it does not open or disagrees with its hints.
    func open(_ stored: StoredClient) -> ClientRecord? {
        guard let record = Self.open(sealed: stored.sealed, clientId: stored.clientId, masterKey: masterKey),
            record.name == stored.name, record.fingerprint == stored.fingerprint, record.isActive == stored.active,
            record.isAdmin == stored.admin
        else { return nil }
        return record
    }

    /// The record sealed for `clientId`, nil when it does not open (a
    /// backup's `client` line carries only these two).
    public static func open(sealed: Data, clientId: String, masterKey: MasterKey) -> ClientRecord? {
        guard let body = try? masterKey.unwrap(sealed, aad: aad(clientId)),
            let decoded = try? JSONDecoder().decode(SealedClient.self, from: body),
            let record = decoded.record, record.clientId == clientId
        else { return nil }
        return record
    }

    /// The stored form of a record sealed elsewhere, its hints read from it.
    public static func stored(sealed: Data, record: ClientRecord) -> StoredClient {
        StoredClient(
            clientId: record.clientId, name: record.name, fingerprint: record.fingerprint, active: record.isActive,
            admin: record.isAdmin, accessKeyIds: record.accessKeys.filter { $0.revokedAt == nil }.map(\.accessKeyId),
            sealed: sealed)
    }

    // MARK: Lookups

    /// The active client with this `clientKey` (key exchange); nil for an
    /// unknown, revoked or unreadable one, which the caller answers alike.
    public func activeClient(fingerprint: String) async throws(KMSError) -> ClientRecord? {
        guard let stored = try await store.client(fingerprint: fingerprint), stored.active else {
            if let decoy { _ = open(decoy) }
            return nil
        }
        guard let record = open(stored), record.isActive else { return nil }
        return record
    }

    /// The active client `clientId` (read for every admitted sealed request).
    public func activeClient(id: String) async throws(KMSError) -> ClientRecord? {
        activeClient(try await store.client(id: id), id: id)
    }

    /// The active client from a row already read (with the seq's admission, on PostgreSQL).
    public func activeClient(_ stored: StoredClient?, id: String) -> ClientRecord? {
        guard let stored, stored.clientId == id, stored.active else { return nil }
        // The row is read every time (a revocation or grant change on any instance
        // applies at once); only the opening of an unchanged row is remembered.
        if let known = opened.withLock({ $0[id] }), known.stored == stored { return known.record }
        guard let record = open(stored), record.isActive else { return nil }
        opened.withLock { cache in
            if cache.count >= 1_024 { cache.removeAll(keepingCapacity: true) }
            cache[id] = (stored, record)
        }
        return record
    }

    /// `{client}` of a route: a clientId (any state), or an active client's name.
    public func resolve(_ reference: String) async throws(KMSError) -> (record: ClientRecord, revision: Int) {
        let stored: StoredClient?
        if ClientRecord.isClientId(reference) {
            stored = try await store.client(id: reference)
        } else if ClientRecord.isValidName(reference) {
            stored = try await store.client(name: reference)
        } else {
            throw KMSError(.invalidRequest, "not a clientId (cli_…) or a client name", field: "client")
        }
        // A record that does not open (tampered, or another master key) counts as revoked:
        // it cannot be shown or changed, so it is answered as absent, never as a 500.
        guard let stored, let record = open(stored) else { throw Self.clientNotFound }
        return (record, stored.revision)
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [ClientRecord] {
        try await page(after: after, limit: limit).records
    }

    /// A page by clientId over the stored rows: `next` follows the rows, so a
    /// record that does not open (counted as revoked, not shown) never ends
    /// the listing early.
    public func page(after: String?, limit: Int) async throws(KMSError) -> (records: [ClientRecord], next: String?) {
        let stored = try await store.list(after: after, limit: limit + 1)
        let shown = stored.prefix(limit)
        return (shown.compactMap { open($0) }, stored.count > limit ? shown.last?.clientId : nil)
    }

    // MARK: Changes

    /// `POST /clients`: a new client with these grants.
    public func add(name: String, publicKey: Data, grants: [Grant]) async throws(KMSError) -> ClientRecord {
        let record = ClientRecord(
            clientId: ClientRecord.newClientId(), name: name, publicKey: publicKey, grants: grants,
            createdAt: clock.now())
        try await store.add(try seal(record), onlyIfEmpty: false)
        return record
    }

    /// The bootstrap client's name.
    public static let bootstrapName = "admin"

    /// Bootstrap (section 6): client `admin` with every permission, only if
    /// the registry holds no record; nil when another instance (or an earlier
    /// start) enrolled someone first.
    public func bootstrapAdmin(publicKey: Data) async throws(KMSError) -> ClientRecord? {
        let record = ClientRecord(
            clientId: ClientRecord.newClientId(), name: Self.bootstrapName, publicKey: publicKey, grants: [.everything],
            createdAt: clock.now())
        return try await store.add(try seal(record), onlyIfEmpty: true) ? record : nil
    }

    /// Whether the registry holds any record (bootstrap runs only when empty).
    public func isEmpty() async throws(KMSError) -> Bool {
        try await store.list(after: nil, limit: 1).isEmpty
    }

    /// Applies `change` to the current record with compare-and-set, retrying
    /// lost races; `change` returns nil to leave the record as it is
    /// (idempotent revokes). A retry reads the client first resolved, by its
    /// clientId: a name may meanwhile belong to another client (the first
    /// revoked and a new one enrolled under its name), and a change meant
    /// for one must never land on the other (a review).
    ///
    /// Says whether it wrote: a change with nothing left to do (a repeated revocation, grants the client
    /// has) is marked `changed=false` in its audit outcome, as a key's no-op is (an audit review: each
    /// repeat read as a fresh success, so a log held several revocation times for one key).
    @discardableResult
    public func update(
        _ reference: String, _ change: @Sendable (ClientRecord) throws(KMSError) -> ClientRecord?
    ) async throws(KMSError) -> (record: ClientRecord, written: Bool) {
        var reference = reference
        for _ in 0..<8 {
            let (current, revision) = try await resolve(reference)
            reference = current.clientId
            guard let changed = try change(current) else { return (current, false) }
            switch try await store.update(try seal(changed), expectedRevision: revision) {
            case .updated: return (changed, true)
            case .conflict: continue
            }
        }
        throw KMSError(.serverBusy, "the client changed concurrently; retry", retryAfterSeconds: 1)
    }

    /// `POST /clients/{client}/grants`; the grants the client has already write nothing (`written` false).
    @discardableResult
    public func setGrants(_ reference: String, _ grants: [Grant]) async throws(KMSError) -> (
        record: ClientRecord, written: Bool
    ) {
        try await update(reference) { current throws(KMSError) in
            guard current.isActive else { throw Self.clientRevoked }
            // The same list only: identity-v1 section 10 keeps stored lists in the order given, and allows two
            // equal grants, so a reordered list is a change (a review of a set comparison).
            guard current.grants != grants else { return nil }
            var changed = current
            changed.grants = grants
            return changed
        }
    }

    /// `POST /clients/{client}/revoke`: final, idempotent (`written` false: revoked already); revokes the
    /// access keys too.
    @discardableResult
    public func revoke(_ reference: String) async throws(KMSError) -> (record: ClientRecord, written: Bool) {
        let now = clock.now()
        return try await update(reference) { current in
            guard current.isActive else { return nil }
            var changed = current
            changed.revokedAt = now
            changed.accessKeys = current.accessKeys.map { key in
                var key = key
                if key.revokedAt == nil { key.revokedAt = now }
                return key
            }
            return changed
        }
    }

    /// `POST /clients/{client}/access-keys`: the id and the secret, shown once.
    public func createAccessKey(_ reference: String) async throws(KMSError) -> (
        record: ClientRecord, accessKeyId: String, secret: String
    ) {
        let secret = Base64.encode(SymmetricKeyBytes.random(count: 30))
        let accessKeyId = "AKIA" + Base32.encode(SymmetricKeyBytes.random(count: 10))
        let now = clock.now()
        let masterKey = masterKey
        let (record, _) = try await update(reference) { current throws(KMSError) in
            guard current.isActive else { throw Self.clientRevoked }
            guard current.accessKeys.count < ClientLimits.accessKeys,
                current.accessKeys.filter({ $0.revokedAt == nil }).count < ClientLimits.activeAccessKeys
            else {
                throw KMSError(
                    .limitReached,
                    "a client has at most \(ClientLimits.activeAccessKeys) active and \(ClientLimits.accessKeys) access keys; revoke one first"
                )
            }
            var changed = current
            let wrapped = try masterKey.wrap(
                Data(secret.utf8), aad: "kms-v1/secret/access-key/\(current.clientId)/\(accessKeyId)")
            changed.accessKeys.append(AccessKeyRecord(accessKeyId: accessKeyId, createdAt: now, wrappedSecret: wrapped))
            return changed
        }
        return (record, accessKeyId, secret)
    }

    /// aws-kms-v1 section 3: the active client holding the active access key
    /// `accessKeyId`, and the key's secret; nil for an unknown or revoked key
    /// or client (read per request: revocation is immediate). The row's
    /// opening is remembered as for sealed requests (`activeClient`): a
    /// request naming a valid access key with a junk signature cost a JSON
    /// decode of the record each time (a review).
    public func accessKeySecret(_ accessKeyId: String) async throws(KMSError) -> (client: ClientRecord, secret: Data)? {
        guard AccessKeyRecord.isAccessKeyId(accessKeyId), let stored = try await store.client(accessKeyId: accessKeyId),
            let record = activeClient(stored, id: stored.clientId),
            let key = record.accessKeys.first(where: { $0.accessKeyId == accessKeyId && $0.revokedAt == nil }),
            let secret = try? masterKey.unwrap(
                key.wrappedSecret, aad: "kms-v1/secret/access-key/\(record.clientId)/\(accessKeyId)")
        else { return nil }
        return (record, secret)
    }

    /// `POST /clients/{client}/access-keys/{accessKeyId}/revoke`: idempotent (`written` false: revoked
    /// already, with the key or its client).
    @discardableResult
    public func revokeAccessKey(_ reference: String, accessKeyId: String) async throws(KMSError) -> (
        record: ClientRecord, written: Bool
    ) {
        let now = clock.now()
        return try await update(reference) { current throws(KMSError) in
            guard let index = current.accessKeys.firstIndex(where: { $0.accessKeyId == accessKeyId }) else {
                throw KMSError(.accessKeyNotFound, "this client has no access key \(accessKeyId)")
            }
            guard current.accessKeys[index].revokedAt == nil else { return nil }
            var changed = current
            changed.accessKeys[index].revokedAt = now
            return changed
        }
    }

    static let clientNotFound = KMSError(.clientNotFound, "no client has this id, and no active client this name")
    static let clientRevoked = KMSError(.clientRevoked, "the client is revoked; revocation is final")
}

/// The sealed body of a client record (never returned as is: `ClientRecord.json`
/// is the API's shape, without the wrapped secrets).
struct SealedClient: Codable {
    struct Grant: Codable {
        var keys: [String]
        var allow: [String]
    }
    struct AccessKey: Codable {
        var accessKeyId: String
        var createdAt: Date
        var revokedAt: Date?
        var wrappedSecret: Data
    }
    var clientId: String
    var name: String
    var publicKey: Data
    var grants: [Grant]
    var createdAt: Date
    var revokedAt: Date?
    var accessKeys: [AccessKey]

    init(_ record: ClientRecord) {
        clientId = record.clientId
        name = record.name
        publicKey = record.publicKey
        grants = record.grants.map { Grant(keys: $0.keys.map(\.text), allow: $0.allow.map(\.rawValue)) }
        createdAt = record.createdAt
        revokedAt = record.revokedAt
        accessKeys = record.accessKeys.map {
            AccessKey(
                accessKeyId: $0.accessKeyId, createdAt: $0.createdAt, revokedAt: $0.revokedAt,
                wrappedSecret: $0.wrappedSecret)
        }
    }

    /// The record, or nil when a stored grant no longer parses.
    var record: ClientRecord? {
        var parsed: [KMSCore.Grant] = []
        for grant in grants {
            let keys = grant.keys.compactMap(KeyPattern.init)
            let allow = grant.allow.compactMap(Permission.init(rawValue:))
            guard keys.count == grant.keys.count, allow.count == grant.allow.count else { return nil }
            parsed.append(KMSCore.Grant(keys: keys, allow: allow))
        }
        return ClientRecord(
            clientId: clientId, name: name, publicKey: publicKey, grants: parsed, createdAt: createdAt,
            revokedAt: revokedAt,
            accessKeys: accessKeys.map {
                AccessKeyRecord(
                    accessKeyId: $0.accessKeyId, createdAt: $0.createdAt, revokedAt: $0.revokedAt,
                    wrappedSecret: $0.wrappedSecret)
            })
    }
}

/// The registry's memo of opened records (a class: the registry is a value).
final class OpenedClients: Sendable {
    private let cache = Mutex<[String: (stored: StoredClient, record: ClientRecord)]>([:])

    func withLock<T>(_ body: (inout [String: (stored: StoredClient, record: ClientRecord)]) -> T) -> T {
        cache.withLock { body(&$0) }
    }
}

/// RFC 4648 base32 (A–Z, 2–7), no padding: access key ids.
enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }
}
