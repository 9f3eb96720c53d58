import Foundation
public import KMSCore
import Logging
import PostgresNIO

/// `ClientStore` in PostgreSQL, shared by every instance.
///
/// Every change runs in one transaction under the registry's advisory lock
/// (keyed by the table prefix), so the checks of `ClientStore`'s contract
/// (unique active names, a public key once ever, the limits, the last admin)
/// hold across instances; the unique indexes back them up.
public final class PostgresClientStore: ClientStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    private var table: String { database.table("clients") }
    private var logger: Logger { database.logger }
    private static let columns = "client_id, name, fingerprint, active, admin, access_key_ids, sealed, revision"

    private typealias Row = (String, String, String, Bool, Bool, [String], Data, Int)

    private static func client(_ row: Row) -> StoredClient {
        StoredClient(
            clientId: row.0, name: row.1, fingerprint: row.2, active: row.3, admin: row.4, accessKeyIds: row.5,
            sealed: row.6, revision: row.7)
    }

    private func rows(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> [StoredClient] {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            var clients: [StoredClient] = []
            for try await row in try await client.query(query, logger: logger).decode(Row.self) {
                clients.append(Self.client(row))
            }
            return clients
        }
    }

    private static func rows(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws
        -> [StoredClient]
    {
        var clients: [StoredClient] = []
        for try await row in try await connection.query(query, logger: logger).decode(Row.self) {
            clients.append(client(row))
        }
        return clients
    }

    public func client(id: String) async throws(KMSError) -> StoredClient? {
        try await rows(
            "read client", "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE client_id = \(id)"
        )
        .first
    }

    public func client(name: String) async throws(KMSError) -> StoredClient? {
        try await rows(
            "read client", "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE active AND name = \(name)"
        ).first
    }

    public func client(fingerprint: String) async throws(KMSError) -> StoredClient? {
        try await rows(
            "read client",
            "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE fingerprint = \(fingerprint)"
        ).first
    }

    public func client(accessKeyId: String) async throws(KMSError) -> StoredClient? {
        try await rows(
            "read client",
            "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE access_key_ids @> ARRAY[\(accessKeyId)]"
        ).first
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [StoredClient] {
        try await rows(
            "list clients",
            """
            SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE client_id > \(after ?? "")
            ORDER BY client_id LIMIT \(max(0, limit))
            """)
    }

    @discardableResult
    public func add(_ client: StoredClient, onlyIfEmpty: Bool) async throws(KMSError) -> Bool {
        let (database, table, logger) = (database, table, logger)
        return try await database.transaction("add client", uniqueViolation: .publicKeyInUse) { connection in
            try await database.lock(.clientRegistry, on: connection)
            var active = 0
            var total = 0
            for try await (a, t) in try await connection.query(
                "SELECT count(*) FILTER (WHERE active), count(*) FROM \(unescaped: table)", logger: logger
            ).decode((Int, Int).self) {
                (active, total) = (a, t)
            }
            if onlyIfEmpty, total > 0 { return false }
            if client.active,
                try await !Self.rows(
                    "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE active AND name = \(client.name)",
                    on: connection, logger: logger
                ).isEmpty
            {
                throw KMSError.nameInUse(client.name)
            }
            if try await !Self.rows(
                "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE fingerprint = \(client.fingerprint)",
                on: connection, logger: logger
            ).isEmpty {
                throw KMSError.publicKeyInUse
            }
            guard total < ClientLimits.records, active < ClientLimits.activeClients || !client.active else {
                throw KMSError.clientLimitReached
            }
            try await connection.query(
                """
                INSERT INTO \(unescaped: table) (\(unescaped: Self.columns))
                VALUES (\(client.clientId), \(client.name), \(client.fingerprint), \(client.active), \(client.admin),
                        \(client.accessKeyIds), \(client.sealed), 1)
                """, logger: logger)
            return true
        }
    }

    public func update(_ client: StoredClient, expectedRevision: Int) async throws(KMSError) -> ClientUpdate {
        let (database, table, logger) = (database, table, logger)
        return try await database.transaction("update client", uniqueViolation: .nameInUse(client.name)) {
            connection in
            try await database.lock(.clientRegistry, on: connection)
            guard
                let current = try await Self.rows(
                    "SELECT \(unescaped: Self.columns) FROM \(unescaped: table) WHERE client_id = \(client.clientId)",
                    on: connection, logger: logger
                ).first
            else { throw KMSError.internal("update of a missing client") }
            guard current.revision == expectedRevision else { return .conflict }
            // The row's revision is the database's to hold: one past Int32 (written by someone else) is damage,
            // not a trap on `+ 1` (a review), as the file store's clients.json is.
            guard (0..<Int(Int32.max)).contains(expectedRevision) else {
                throw KMSError.damagedRecord("the client row \(client.clientId) has a revision out of range")
            }
            if client.active,
                try await Self.rows(
                    """
                    SELECT \(unescaped: Self.columns) FROM \(unescaped: table)
                    WHERE active AND name = \(client.name) AND client_id <> \(client.clientId)
                    """, on: connection, logger: logger
                ).first != nil
            {
                throw KMSError.nameInUse(client.name)
            }
            if current.admin, !client.admin {
                var others = 0
                for try await count in try await connection.query(
                    "SELECT count(*) FROM \(unescaped: table) WHERE admin AND client_id <> \(client.clientId)",
                    logger: logger
                ).decode(Int.self) {
                    others = count
                }
                guard others > 0 else { throw KMSError.lastAdmin }
            }
            var stored = client
            stored.revision = expectedRevision + 1
            try await connection.query(
                """
                UPDATE \(unescaped: table) SET name = \(stored.name), active = \(stored.active), admin = \(stored.admin),
                    access_key_ids = \(stored.accessKeyIds), sealed = \(stored.sealed), revision = \(stored.revision)
                WHERE client_id = \(stored.clientId)
                """, logger: logger)
            return .updated(stored)
        }
    }
}
