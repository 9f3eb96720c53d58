import ArgumentParser
import Foundation
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSServer
import Logging

/// `kms migrate --from file --to postgres` (and back): moves every key, with
/// all its versions, and the server's own secrets, then proves each version's
/// material is the same on both sides.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy keys and server secrets between the file store and PostgreSQL, then verify them.",
        discussion: """
            Uses KEY_STORE_PATH for the file store, KMS_DATABASE_URL for PostgreSQL, and the master key of the \
            configuration (both sides must use the same one: material stays wrapped as it is). Stop the servers \
            first: a server on the file store refuses it (the store's writer lock), and so does one on \
            PostgreSQL (the deployment's running lock, checked once before the copy). Keys already present on \
            the destination are checked, not overwritten; a destination holding a key or client the source lacks \
            (one deleted on the source since an earlier run) is refused before anything is copied. Recorded as store.migrate in KMS_AUDIT_LOG (the log of the \
            instance whose store is copied), whose lock it takes: a log held by a server, or signed by another \
            instance's key, refuses the copy.
            """)

    enum Side: String, ExpressibleByArgument { case file, postgres }

    @Option(help: "Where the keys are now: file or postgres.") var from: Side
    @Option(help: "Where they go: file or postgres.") var to: Side

    func run() async throws {
        guard from != to else { throw ValidationError("--from and --to must differ") }
        let config = try KMSConfiguration.forCommand()
        var logger = Logger(label: "kms-migrate")
        logger.logLevel = .warning
        // Before the store's lock, which would make the folder of a store that was never there.
        let masterKey = try config.existingMasterKey(logger: logger)
        // One side is always the file store: its writer lock (held by kms serve, restore and clients add
        // --local) keeps a running server from writing under the copy, and the copy from sweeping that
        // server's temporary files (a review ran migrate beside a server; the store's opening deleted them).
        let writerLock: AuditWriterLock
        do {
            writerLock = try AuditWriterLock.acquire(forStore: config.keyStorePath)
        } catch {
            throw CLIFailure(message: error.description)
        }
        defer { withExtendedLifetime(writerLock) {} }
        if let refusal = FileBackupStore.interruptedRestoreRefusal(in: config.keyStorePath) {
            throw CLIFailure(message: refusal)
        }
        var database: PostgresDatabase?
        if from == .postgres || to == .postgres {
            guard let url = config.databaseURL else { throw ValidationError("set KMS_DATABASE_URL") }
            database = try await PostgresDatabase(
                url: url, prefix: config.databasePrefix, logger: logger,
                callTimeout: config.databaseCallTimeout)
        }
        defer { database?.shutdown() }
        // Servers on PostgreSQL hold the deployment's running lock (a copy beside one could miss its
        // rotations, or move secrets under it): refused as kms restore is, though only at this moment.
        do {
            try await database?.refuseWhileAServerRuns()
        } catch {
            throw CLIFailure(message: error.message)
        }
        let lifecycle = config.keyLifecycle
        func stores(_ side: Side) throws -> (any KeyStore, any SecretBlobStore) {
            if side == .postgres, let database {
                return (
                    PostgresKeyStore(database: database, lifecycle: lifecycle, clock: SystemClock()),
                    PostgresSecretBlobStore(database: database)
                )
            }
            return (
                try FileKeyStore(folder: config.keyStorePath, lifecycle: lifecycle, clock: SystemClock()),
                FileSecretBlobStore(folder: config.keyStorePath)
            )
        }
        let (sourceKeys, sourceSecrets) = try stores(from)
        let (targetKeys, targetSecrets) = try stores(to)

        // The copy is recorded in the log of the store it copies (KMS_AUDIT_LOG), under that store's audit
        // key, which goes with the keys: a server on either store continues that log.
        let log = try await Self.openLog(config, secrets: sourceSecrets, masterKey: masterKey, logger: logger)
        defer { withExtendedLifetime(log?.lock) {} }
        func copy() async throws -> Moved {
            // Keys and clients only the destination holds, refused before anything is copied: a key the
            // scheduler deleted on the source after an earlier run was left enabled on the destination, and
            // came back with its data once servers moved there (a review).
            func clientStore(_ side: Side) throws -> any ClientStore {
                if side == .postgres, let database { return PostgresClientStore(database: database) }
                return try LocalClientStore(folder: config.keyStorePath)
            }
            let (sourceClients, targetClients) = (try clientStore(from), try clientStore(to))
            let extraKeys = try await Self.onlyOnDestination(
                page: { after in try await targetKeys.list(after: after, limit: 500).map(\.keyId) },
                onSource: { id in try await sourceKeys.key(id: id) != nil })
            let extraClients = try await Self.onlyOnDestination(
                page: { after in try await targetClients.list(after: after, limit: 500).map(\.clientId) },
                onSource: { id in try await sourceClients.client(id: id) != nil })
            if let refusal = Self.extraRefusal(keys: extraKeys, clients: extraClients) {
                throw ValidationError(refusal)
            }

            var keptCertificate = false
            // Every server secret the source holds, read as `kms backup` reads them: a list of names kept
            // here left the AWS door's certificate behind (a review), and would leave the next one.
            let sourceBlobs: [BackupContents.Secret]
            if from == .postgres, let database {
                sourceBlobs = try await PostgresBackupStore(database: database).read().secrets
            } else {
                sourceBlobs = try await FileBackupStore.read(folder: config.keyStorePath).secrets
            }
            for secret in sourceBlobs {
                let (name, blob) = (secret.name, secret.wrapped)
                guard try await targetSecrets.createBlob(named: name, wrapped: blob) == blob else {
                    // A destination whose server started with the AWS door after an earlier migrate (which
                    // left the certificate behind) made its own: kept, since its clients may trust it now.
                    if name == ServerSecrets.awsDoorTLS {
                        keptCertificate = true
                        writeToStandardError(
                            "note: the destination already has its own AWS door certificate, kept: clients that trust the source's need the destination's (kms tls-cert)\n"
                        )
                        continue
                    }
                    throw ValidationError(
                        "the destination already has a different \(name) (another server identity); migrate into an empty store"
                    )
                }
            }

            var copied = 0
            var present = 0
            var versions = 0
            var after: String?
            while true {
                let page = try await sourceKeys.list(after: after, limit: 500)
                guard let last = page.last else { break }
                for record in page {
                    if let existing = try await targetKeys.key(id: record.keyId) {
                        // The whole record, not only versions and aliases: a key disabled or scheduled for
                        // deletion on the source after an earlier run was counted "already there" and
                        // stayed enabled on the destination (a review).
                        let differing = Self.differences(existing, record)
                        guard differing.isEmpty else {
                            throw ValidationError(
                                "key \(record.keyId) differs on the destination (\(differing.joined(separator: ", "))); resolve it by hand"
                            )
                        }
                        present += 1
                    } else {
                        // Aliases are records: each keeps its own dates.
                        try await targetKeys.create(record.withAliases([]))
                        for alias in try await sourceKeys.listAliases(after: nil, limit: 100, keyId: record.keyId) {
                            try await targetKeys.createAlias(alias, copying: true)
                        }
                        copied += 1
                    }
                    // Every version must unwrap to the same material on both sides.
                    guard let moved = try await targetKeys.key(id: record.keyId),
                        moved.versions.map(\.version) == record.versions.map(\.version)
                    else {
                        throw ValidationError("key \(record.keyId) is missing or lacks versions after the copy")
                    }
                    for (source, target) in zip(record.versions, moved.versions) {
                        let aad = "kms-v1/key-material\n\(record.keyId)\n\(source.version)"
                        guard
                            ConstantTime.equal(
                                try masterKey.unwrap(source.wrappedMaterial, aad: aad),
                                try masterKey.unwrap(target.wrappedMaterial, aad: aad))
                        else {
                            throw ValidationError(
                                "key \(record.keyId) version \(source.version) differs after the copy")
                        }
                        versions += 1
                    }
                    // And the active version of an enabled key encrypts on one side and decrypts on the other.
                    guard record.state == .enabled else { continue }
                    let sourceRing = KeyRing(
                        store: sourceKeys, masterKey: masterKey, lifecycle: lifecycle, clock: SystemClock())
                    let targetRing = KeyRing(
                        store: targetKeys, masterKey: masterKey, lifecycle: lifecycle, clock: SystemClock())
                    let probe = Data("kms migrate".utf8)
                    let sealed = try await sourceRing.encrypt(record.keyId, plaintext: probe, aad: Data())
                    guard try await targetRing.decrypt(sealed.ciphertext, aad: Data()).plaintext == probe else {
                        throw ValidationError("key \(record.keyId) does not decrypt the same after the copy")
                    }
                }
                after = last.keyId
            }
            // The client registry (identity-v1): sealed records move as they are (their AADs
            // name the client, not the store); the destination has no other clients (checked above).
            var clients = 0
            var cursor: String?
            while true {
                let page = try await sourceClients.list(after: cursor, limit: 500)
                guard let last = page.last else { break }
                for client in page {
                    if let existing = try await targetClients.client(id: client.clientId) {
                        guard existing.sealed == client.sealed else {
                            throw ValidationError(
                                "client \(client.clientId) differs on the destination; resolve it by hand")
                        }
                        continue
                    }
                    do {
                        try await targetClients.add(client, onlyIfEmpty: false)
                    } catch {
                        throw ValidationError(
                            "client \(client.name) cannot be added on the destination (\(error.message)); migrate into an empty registry"
                        )
                    }
                    clients += 1
                }
                cursor = last.clientId
            }
            return Moved(
                copied: copied, present: present, versions: versions, clients: clients,
                keptCertificate: keptCertificate)
        }
        let moved: Moved
        if let log {
            moved = try await LocalAudit.around(
                log.log, "store.migrate", [("from", from.rawValue), ("to", to.rawValue)], result: \.fields, copy)
        } else {
            moved = try await copy()
            writeToStandardError(
                "note: no audit entry was written: \(config.auditLog.path) (KMS_AUDIT_LOG) does not exist or the store has no audit key yet\n"
            )
        }
        let (copied, present, versions, clients) = (moved.copied, moved.present, moved.versions, moved.clients)
        printShown(
            "migrated \(copied) keys (\(present) already there) from \(from.rawValue) to \(to.rawValue); \(versions) versions verified; \(clients) clients"
        )
    }
}

extension MigrateCommand {
    /// What differs between a key on the destination and on the source, by field name (the revision,
    /// a store's own counter, aside).
    static func differences(_ destination: KeyRecord, _ source: KeyRecord) -> [String] {
        var differing: [String] = []
        if destination.versions != source.versions { differing.append("versions") }
        if destination.aliases != source.aliases { differing.append("aliases") }
        if destination.createdAt != source.createdAt { differing.append("createdAt") }
        if destination.state != source.state { differing.append("state") }
        if destination.deletionDate != source.deletionDate || destination.pendingWindowDays != source.pendingWindowDays
        {
            differing.append("deletion")
        }
        if destination.rotationPeriodDays != source.rotationPeriodDays
            || destination.nextRotationAt != source.nextRotationAt
        {
            differing.append("rotation")
        }
        if destination.description != source.description { differing.append("description") }
        if destination.tags != source.tags { differing.append("tags") }
        if destination.policy != source.policy { differing.append("policy") }
        // The record's own equality decides; the names above only say where. A field added to the record
        // later is still compared.
        var normalized = destination
        normalized.revision = source.revision
        if differing.isEmpty, normalized != source { differing.append("other fields") }
        return differing
    }

    /// Every id the destination lists that the source does not hold, in the destination's order.
    static func onlyOnDestination(
        page: (String?) async throws -> [String], onSource: (String) async throws -> Bool
    ) async throws -> [String] {
        var extra: [String] = []
        var after: String?
        while true {
            let ids = try await page(after)
            guard let last = ids.last else { return extra }
            for id in ids where try await !onSource(id) { extra.append(id) }
            after = last
        }
    }

    /// Why a destination holding keys or clients the source lacks is refused; nil when it holds none.
    /// A re-run would otherwise leave them as they are: a key deleted on the source since the last run
    /// would stay usable there.
    static func extraRefusal(keys: [String], clients: [String]) -> String? {
        func named(_ ids: [String], _ what: String) -> String? {
            guard !ids.isEmpty else { return nil }
            let shown = ids.prefix(5).joined(separator: ", ") + (ids.count > 5 ? ", …" : "")
            return "\(ids.count) \(what)\(ids.count == 1 ? "" : "s") (\(shown))"
        }
        let parts = [named(keys, "key"), named(clients, "client")].compactMap { $0 }
        guard !parts.isEmpty else { return nil }
        return
            "nothing was copied: the destination holds \(parts.joined(separator: " and ")) the source does not: a key deleted on the source since an earlier migrate, or made on the destination. Copying around them would keep a deleted key usable there; migrate into an empty store (move the destination's store aside, or use another KMS_DATABASE_PREFIX)"
    }

    /// What a migration copied, as its audit entry records it.
    struct Moved {
        var copied: Int
        var present: Int
        var versions: Int
        var clients: Int
        /// The destination kept its own AWS door certificate (recorded: clients of the source's need another).
        var keptCertificate = false

        var fields: [(String, String)] {
            [
                ("keys", "\(copied)"), ("keysAlreadyThere", "\(present)"), ("versions", "\(versions)"),
                ("clients", "\(clients)"),
            ] + (keptCertificate ? [("awsCertificate", "destination's kept")] : [])
        }
    }

    /// The configured log, under the source store's audit key, with its lock
    /// (refused while a server writes it); nil when there is no log there or
    /// the store never made an audit key, and so nothing to continue.
    static func openLog(
        _ config: KMSConfiguration, secrets: any SecretBlobStore, masterKey: MasterKey, logger: Logger
    ) async throws -> (log: AuditLog, lock: AuditWriterLock?)? {
        // Rotated files with entries and no current file (a crash between a rotation's rename and the new
        // file's first write, or the file moved aside) are a log too: the next start continues their chain,
        // so the copy is recorded there (a review: it went unrecorded).
        guard
            FileManager.default.fileExists(atPath: config.auditLog.path)
                || !AuditFiles.filesWithEntries(config.auditLog).isEmpty
        else { return nil }
        do {
            guard let key = try await AuditFiles.existingKey(store: secrets, masterKey: masterKey) else { return nil }
            let lock = try AuditWriterLock.acquire(forLog: config.auditLog)
            return (try await LocalAudit.open(config, key: key, keyExisted: true, logger: logger), lock)
        } catch let failure as AuditWriterLock.Failure {
            throw CLIFailure(message: "nothing was copied: \(failure.description)")
        } catch {
            throw CLIFailure(
                message:
                    "nothing was copied: \(LocalAudit.reason(error)). The copy is recorded in KMS_AUDIT_LOG (\(config.auditLog.path)): give this command the log of the instance whose store it copies"
            )
        }
    }
}
