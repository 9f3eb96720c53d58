import Foundation
public import KMSCore
import KMSProtocol
import Logging
import PostgresNIO

/// lifecycle-v1 section 6 on PostgreSQL: a backup is read in one
/// `REPEATABLE READ READ ONLY` transaction (one consistent snapshot while
/// servers keep running), and a restore is written, read back and verified
/// in one transaction, so a failure writes nothing.
public struct PostgresBackupStore: Sendable {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    /// Everything a backup holds, from one snapshot.
    public func read() async throws(KMSError) -> BackupContents {
        let database = database
        return try await database.transaction("read a backup", offline: true) {
            connection in
            try await connection.query(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: database.logger)
            return try await Self.read(database, on: connection)
        }
    }

    /// Whether the database may take a restore: no rows at all, or (with
    /// `replaceServerSecrets`) only what a first start makes — server secrets
    /// and the bootstrap `admin` — which the restore replaces.
    public func restore(
        _ contents: BackupContents, masterKey: MasterKey, replaceServerSecrets: Bool,
        verify: @escaping @Sendable (BackupContents) async throws(KMSError) -> Void
    ) async throws(KMSError) {
        let database = database
        let (logger, t) = (database.logger, database.table)
        try await database.transaction(
            "restore a backup", offline: true, noIdleLimit: true
        ) {
            connection in
            // No server may run on the deployment: each holds the running lock on its key-change
            // listener's connection (a restore under a running server replaced its secrets unseen).
            guard try await database.noServerRuns(on: connection) else {
                throw PostgresDatabase.serverRunsRefusal(prefix: database.prefix)
            }
            // No instance may write between the emptiness check and the commit, nor read: a server
            // starting now (its listener not yet holding the running lock) waits for the commit, or fails
            // its start-up at its lock timeout, instead of loading the secrets this restore replaces.
            let tables = ["keys", "aliases", "clients", "secrets", "sessions", "pending"].map { t($0) }
            try await connection.query(
                PostgresQuery(unsafeSQL: "LOCK TABLE \(tables.joined(separator: ", ")) IN ACCESS EXCLUSIVE MODE"),
                logger: logger)
            let counts = try await Self.counts(database, on: connection)
            let startupOnly =
                counts.keys == 0 && counts.aliases == 0 && counts.clients <= 1 && counts.adminOnly
            guard counts.total == 0 || (replaceServerSecrets && startupOnly) else {
                throw KMSError(
                    .invalidRequest,
                    counts.keys + counts.aliases > 0 || !startupOnly
                        ? "the database already holds keys or clients: restore only into a never-started store"
                        : "the database holds the secrets of a first start; pass --replace-server-secrets to replace them"
                )
            }
            for table in ["sessions", "pending", "clients", "secrets"] {
                try await connection.query("DELETE FROM \(unescaped: t(table))", logger: logger)
            }
            for key in contents.keys {
                let text = String(decoding: KeyFileFormat.encode(key) { _ in .active }, as: UTF8.self)
                try await connection.query(
                    """
                    INSERT INTO \(unescaped: t("keys")) (key_id, revision, record, state, deletion_date, next_rotation_at)
                    VALUES (\(key.keyId), \(key.revision), \(text), \(key.state.rawValue), \(key.deletionDate),
                            \(key.nextRotationAt))
                    """, logger: logger)
            }
            for alias in contents.aliases {
                try await connection.query(
                    """
                    INSERT INTO \(unescaped: t("aliases")) (alias, key_id, created_at, updated_at)
                    VALUES (\(alias.alias), \(alias.keyId), \(alias.createdAt), \(alias.updatedAt))
                    """, logger: logger)
            }
            for secret in contents.secrets {
                try await connection.query(
                    "INSERT INTO \(unescaped: t("secrets")) (name, wrapped) VALUES (\(secret.name), \(secret.wrapped))",
                    logger: logger)
            }
            for client in contents.clients {
                let stored = try BackupRestore.storedClient(client, masterKey: masterKey)
                try await connection.query(
                    """
                    INSERT INTO \(unescaped: t("clients"))
                      (client_id, name, fingerprint, active, admin, access_key_ids, sealed, revision)
                    VALUES (\(stored.clientId), \(stored.name), \(stored.fingerprint), \(stored.active),
                            \(stored.admin), \(stored.accessKeyIds), \(stored.sealed), 1)
                    """, logger: logger)
            }
            try await verify(try await Self.read(database, on: connection))
        }
    }

    private struct Counts {
        var keys = 0
        var aliases = 0
        var clients = 0
        var secrets = 0
        var sessions = 0
        var adminOnly = true
        var total: Int { keys + aliases + clients + secrets + sessions }
    }

    private static func counts(_ database: PostgresDatabase, on connection: PostgresConnection) async throws -> Counts {
        let t = database.table
        var counts = Counts()
        let query: PostgresQuery = """
            SELECT (SELECT count(*) FROM \(unescaped: t("keys"))), (SELECT count(*) FROM \(unescaped: t("aliases"))),
              (SELECT count(*) FROM \(unescaped: t("clients"))), (SELECT count(*) FROM \(unescaped: t("secrets"))),
              (SELECT count(*) FROM \(unescaped: t("sessions"))) + (SELECT count(*) FROM \(unescaped: t("pending"))),
              (SELECT count(*) FROM \(unescaped: t("clients")) WHERE name <> \(ClientRegistry.bootstrapName))
            """
        for try await row in try await connection.query(query, logger: database.logger).decode(
            (Int, Int, Int, Int, Int, Int).self)
        {
            counts = Counts(
                keys: row.0, aliases: row.1, clients: row.2, secrets: row.3, sessions: row.4, adminOnly: row.5 == 0)
        }
        return counts
    }

    private static func read(_ database: PostgresDatabase, on connection: PostgresConnection) async throws
        -> BackupContents
    {
        let (logger, t) = (database.logger, database.table)
        var contents = BackupContents()
        for try await (alias, keyId, created, updated) in try await connection.query(
            "SELECT alias, key_id, created_at, updated_at FROM \(unescaped: t("aliases")) ORDER BY alias",
            logger: logger
        ).decode((String, String, Date, Date).self) {
            contents.aliases.append(AliasRecord(alias: alias, keyId: keyId, createdAt: created, updatedAt: updated))
        }
        var byKey: [String: [String]] = [:]
        for alias in contents.aliases { byKey[alias.keyId, default: []].append(alias.alias) }
        for try await (keyId, text) in try await connection.query(
            "SELECT key_id, record FROM \(unescaped: t("keys")) ORDER BY key_id COLLATE \"C\"", logger: logger
        ).decode((String, String).self) {
            // As the key store reads it: a damaged row, or one holding another key's record, is refused.
            let record = try KeyFileFormat.decodeStored(Data(text.utf8), keyId: keyId, place: "the key row \(keyId)")
            contents.keys.append(record.withAliases(byKey[record.keyId] ?? []))
        }
        for try await (name, wrapped) in try await connection.query(
            "SELECT name, wrapped FROM \(unescaped: t("secrets")) ORDER BY name", logger: logger
        ).decode((String, Data).self) {
            contents.secrets.append(BackupContents.Secret(name: name, wrapped: wrapped))
        }
        for try await (clientId, sealed) in try await connection.query(
            "SELECT client_id, sealed FROM \(unescaped: t("clients")) ORDER BY client_id", logger: logger
        ).decode((String, Data).self) {
            contents.clients.append(BackupContents.Client(clientId: clientId, sealed: sealed))
        }
        return contents
    }
}
