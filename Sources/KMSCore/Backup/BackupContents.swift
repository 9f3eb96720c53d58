import Crypto
public import Foundation
import KMSProtocol

/// Everything a backup holds (lifecycle-v1 section 6), as stored: key
/// records with their versions wrapped by the master key, alias records,
/// the server's own secrets (wrapped), and the client registry's sealed
/// records. Never the master key, sessions or the audit log.
public struct BackupContents: Sendable, Equatable {
    public struct Secret: Sendable, Equatable {
        public let name: String
        public let wrapped: Data

        public init(name: String, wrapped: Data) {
            self.name = name
            self.wrapped = wrapped
        }
    }

    /// One client line: the sealed record and the id it is sealed for.
    public struct Client: Sendable, Equatable {
        public let clientId: String
        public let sealed: Data

        public init(clientId: String, sealed: Data) {
            self.clientId = clientId
            self.sealed = sealed
        }
    }

    /// One access key, as wrapped inside its client's sealed record.
    public struct AccessKey: Sendable, Equatable {
        public let clientId: String
        public let accessKeyId: String
        public let wrapped: Data
    }

    /// Keys sorted by id, their `aliases` filled in.
    public var keys: [KeyRecord] = []
    public var aliases: [AliasRecord] = []
    public var secrets: [Secret] = []
    public var clients: [Client] = []

    public init(keys: [KeyRecord] = [], aliases: [AliasRecord] = [], secrets: [Secret] = [], clients: [Client] = []) {
        self.keys = keys
        self.aliases = aliases
        self.secrets = secrets
        self.clients = clients
    }

    /// Cancels the scheduled deletion of the keys `keyIds` names, as
    /// `cancel-deletion` does (each comes back disabled); `kms restore
    /// --cancel-passed-deletions` uses it for keys whose date has passed.
    public mutating func cancelDeletions(of keyIds: Set<String>, now: Date) {
        for index in keys.indices where keyIds.contains(keys[index].keyId) {
            _ = try? KeyChange.cancelDeletion.apply(to: &keys[index], now: now)
        }
    }

    /// The manifest's `counts`, in its member order.
    public struct Counts: Sendable, Equatable {
        public var keys = 0
        public var versions = 0
        public var aliases = 0
        public var secrets = 0
        public var clients = 0
        public var accessKeys = 0

        /// `7 keys, 12 versions, …` for messages.
        public var summary: String { members.map { "\($0.1) \($0.0)" }.joined(separator: ", ") }

        public var members: [(String, Int)] {
            [
                ("keys", keys), ("versions", versions), ("aliases", aliases), ("secrets", secrets),
                ("clients", clients), ("accessKeys", accessKeys),
            ]
        }
    }

    /// Opens every wrapped value (each version's material, each secret, each
    /// client record and its access keys) and returns the access keys and
    /// the counts; the first that does not open stops it, named.
    public func open(with masterKey: MasterKey) throws(KMSError) -> (accessKeys: [AccessKey], counts: Counts) {
        var counts = Counts(keys: keys.count, aliases: aliases.count, secrets: secrets.count, clients: clients.count)
        for key in keys {
            for version in key.versions {
                guard let material = try? KeyRing.unwrapMaterial(key, version: version, masterKey: masterKey) else {
                    throw Self.unopened("key \(key.keyId) version \(version.version)")
                }
                // Only a holder of the master key can wrap other sizes; refused here so that no restored
                // key fails every encrypt afterwards with a 500 (AES-256 needs 32 bytes).
                guard material.count == KeyRing.materialBytes else {
                    throw KMSError(
                        .invalidRequest,
                        "key \(key.keyId) version \(version.version) holds \(material.count) bytes of material, "
                            + "not the \(KeyRing.materialBytes) of an AES-256 key: the backup was not made by this KMS")
                }
                counts.versions += 1
            }
        }
        let keyIds = Set(keys.map(\.keyId))
        for alias in aliases where !keyIds.contains(alias.keyId) {
            throw KMSError(.invalidRequest, "alias \(alias.alias) names \(alias.keyId), which the backup does not hold")
        }
        for secret in secrets {
            guard (try? masterKey.unwrap(secret.wrapped, aad: "kms-v1/secret/\(secret.name)")) != nil else {
                throw Self.unopened("server secret \(secret.name)")
            }
        }
        var accessKeys: [AccessKey] = []
        // What every client store keeps unique (a public key for ever, a name among active clients), checked
        // here as the backup's fault: PostgreSQL's constraint refused it mid-restore as `server_busy`,
        // inviting a retry (a review).
        var fingerprints = Set<String>()
        var activeNames = Set<String>()
        for client in clients {
            guard
                let record = ClientRegistry.open(sealed: client.sealed, clientId: client.clientId, masterKey: masterKey)
            else { throw Self.unopened("client \(client.clientId)") }
            guard fingerprints.insert(record.fingerprint).inserted else {
                throw KMSError(.invalidRequest, "two clients of the backup have the public key \(record.fingerprint)")
            }
            guard !record.isActive || activeNames.insert(record.name).inserted else {
                throw KMSError(.invalidRequest, "two active clients of the backup are named \(record.name)")
            }
            for key in record.accessKeys {
                let aad = "kms-v1/secret/access-key/\(client.clientId)/\(key.accessKeyId)"
                guard (try? masterKey.unwrap(key.wrappedSecret, aad: aad)) != nil else {
                    throw Self.unopened("access key \(key.accessKeyId) of client \(client.clientId)")
                }
                accessKeys.append(
                    AccessKey(clientId: client.clientId, accessKeyId: key.accessKeyId, wrapped: key.wrappedSecret))
            }
        }
        counts.accessKeys = accessKeys.count
        return (accessKeys, counts)
    }

    /// Checks that `restored` (read back from the store just written) holds
    /// the same as this backup: counts, and each version's material (not only
    /// its wrapped bytes); then round-trips a probe through every enabled key.
    public func verify(restored: BackupContents, masterKey: MasterKey) async throws(KMSError) {
        let expected = try open(with: masterKey).counts
        let found = try restored.open(with: masterKey).counts
        guard expected == found else {
            throw KMSError.internal(
                "the restored store holds \(found.summary), the backup \(expected.summary): nothing was kept")
        }
        let byId = Dictionary(restored.keys.map { ($0.keyId, $0) }, uniquingKeysWith: { first, _ in first })
        let memory = InMemoryKeyStore()
        for key in keys {
            guard let copy = byId[key.keyId], copy.versions.count == key.versions.count, copy.aliases == key.aliases,
                copy.state == key.state
            else { throw KMSError.internal("key \(key.keyId) differs after the restore") }
            for (original, restoredVersion) in zip(key.versions, copy.versions) {
                let before = try KeyRing.unwrapMaterial(key, version: original, masterKey: masterKey)
                let after = try KeyRing.unwrapMaterial(copy, version: restoredVersion, masterKey: masterKey)
                guard ConstantTime.equal(before, after) else {
                    throw KMSError.internal("key \(key.keyId) version \(original.version) differs after the restore")
                }
            }
            try await memory.create(copy)
        }
        guard Set(secrets.map(\.name)) == Set(restored.secrets.map(\.name)),
            Set(clients.map(\.clientId)) == Set(restored.clients.map(\.clientId))
        else { throw KMSError.internal("server secrets or clients differ after the restore") }
        let ring = KeyRing(
            store: memory, masterKey: masterKey, lifecycle: KeyLifecycle(graceMs: 0), clock: SystemClock())
        let probe = Data("kms restore probe".utf8)
        for key in restored.keys where key.state == .enabled {
            let sealed = try await ring.encrypt(key.keyId, plaintext: probe, aad: Data("restore".utf8))
            guard try await ring.decrypt(sealed.ciphertext, aad: Data("restore".utf8)).plaintext == probe else {
                throw KMSError.internal("key \(key.keyId) failed its probe after the restore")
            }
        }
    }

    public static func unopened(_ what: String) -> KMSError {
        KMSError(
            .invalidRequest,
            "\(what) does not open under this master key (another master key, or the backup was changed)")
    }
}
