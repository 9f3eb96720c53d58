import Foundation
public import KMSCore
import KMSProtocol
import Logging
import PostgresNIO

/// `KeyStore` in PostgreSQL, shared by every instance.
///
/// One row per key holding the same readable JSON as the file store's key
/// file; compare-and-set is `UPDATE … WHERE revision = expected`, so two
/// instances rotating one key can never both win.
public final class PostgresKeyStore: KeyStore {
    let database: PostgresDatabase
    let lifecycle: KeyLifecycle
    let clock: any KMSClock

    public init(database: PostgresDatabase, lifecycle: KeyLifecycle, clock: any KMSClock) {
        self.database = database
        self.lifecycle = lifecycle
        self.clock = clock
    }

    private var table: String { database.table("keys") }
    private var logger: Logger { database.logger }

    private func encode(_ record: KeyRecord) -> String {
        let now = clock.now()
        return String(
            decoding: KeyFileFormat.encode(record) { self.lifecycle.status(record, version: $0, now: now) },
            as: UTF8.self)
    }

    private func decode(_ text: String) throws(KMSError) -> KeyRecord {
        do {
            return try KeyFileFormat.decode(Data(text.utf8))
        } catch {
            throw KMSError.internal("a key row is corrupt: \(error.message)")
        }
    }

    public func create(_ record: KeyRecord) async throws(KMSError) {
        let (client, logger, table, text) = (database.client, logger, table, encode(record))
        let inserted = try await database.withDeadline("create key") {
            var inserted = false
            for try await _ in try await client.query(
                """
                INSERT INTO \(unescaped: table) (key_id, alias, revision, record)
                VALUES (\(record.keyId), \(record.alias), \(record.revision), \(text))
                ON CONFLICT DO NOTHING RETURNING key_id
                """, logger: logger)
            {
                inserted = true
            }
            return inserted
        }
        if inserted { return }
        if let alias = record.alias, try await key(alias: alias) != nil { throw KMSError.aliasInUse(alias) }
        throw KMSError.internal("duplicate key id")
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        try await one("SELECT record FROM \(unescaped: table) WHERE key_id = \(id)")
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        try await one("SELECT record FROM \(unescaped: table) WHERE alias = \(alias)")
    }

    private func one(_ query: PostgresQuery) async throws(KMSError) -> KeyRecord? {
        let (client, logger) = (database.client, logger)
        let text: String? = try await database.withDeadline("read key") {
            var text: String?
            for try await record in try await client.query(query, logger: logger).decode(String.self) { text = record }
            return text
        }
        return try text.map { text throws(KMSError) in try decode(text) }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        var stored = record
        stored.revision = expectedRevision + 1
        let (client, logger, table, text, revision) = (database.client, logger, table, encode(stored), stored.revision)
        let updated = try await database.withDeadline("update key") {
            var updated = false
            for try await _ in try await client.query(
                """
                UPDATE \(unescaped: table) SET revision = \(revision), record = \(text)
                WHERE key_id = \(record.keyId) AND revision = \(expectedRevision) RETURNING key_id
                """, logger: logger)
            {
                updated = true
            }
            return updated
        }
        guard updated else {
            guard try await key(id: record.keyId) != nil else { throw KMSError.internal("update of a missing key") }
            return .conflict
        }
        return .updated(stored)
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        let (client, logger, table) = (database.client, logger, table)
        let texts: [String] = try await database.withDeadline("list keys") {
            var texts: [String] = []
            for try await text in try await client.query(
                // Byte order, as the file store and the contract list keys, whatever the database's collation.
                """
                SELECT record FROM \(unescaped: table) WHERE key_id COLLATE "C" > \(after ?? "")
                ORDER BY key_id COLLATE "C" LIMIT \(limit)
                """,
                logger: logger
            ).decode(String.self) {
                texts.append(text)
            }
            return texts
        }
        var records: [KeyRecord] = []
        for text in texts { records.append(try decode(text)) }
        return records
    }

    public func count() async throws(KMSError) -> Int {
        let (client, logger, table) = (database.client, logger, table)
        return try await database.withDeadline("count keys") {
            for try await count in try await client.query("SELECT count(*) FROM \(unescaped: table)", logger: logger)
                .decode(Int.self)
            {
                return count
            }
            return 0
        }
    }
}
