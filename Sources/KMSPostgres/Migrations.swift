import Logging
import PostgresNIO

/// Versioned schema changes, applied in order at start-up under an advisory
/// lock, so instances starting together apply each migration once.
struct Migrations {
    let database: PostgresDatabase

    /// Migration n is `steps[n - 1]`. Never edit a published step: add one.
    var steps: [[String]] {
        let t = database.table
        return [
            [
                """
                CREATE TABLE \(t("keys")) (
                    key_id text PRIMARY KEY, alias text UNIQUE, revision int8 NOT NULL, record text NOT NULL)
                """,
                """
                CREATE TABLE \(t("pending")) (
                    id text PRIMARY KEY, client_address text NOT NULL, expires_at timestamptz NOT NULL)
                """,
                "CREATE INDEX ON \(t("pending")) (client_address)",
                "CREATE INDEX ON \(t("pending")) (expires_at)",
                """
                CREATE TABLE \(t("sessions")) (
                    id text PRIMARY KEY, token_hash bytea NOT NULL UNIQUE, wrapped_key bytea NOT NULL,
                    created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
                    absolute_expiry timestamptz NOT NULL, window_highest int8 NOT NULL, window_bits bytea NOT NULL,
                    rotations text NOT NULL)
                """,
                "CREATE INDEX ON \(t("sessions")) (expires_at)",
                "CREATE TABLE \(t("secrets")) (name text PRIMARY KEY, wrapped bytea NOT NULL)",
            ]
        ]
    }

    func apply() async throws {
        let versions = database.table("schema_version")
        let logger = database.logger
        _ = try await database.client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query("SELECT pg_advisory_xact_lock(7311)", logger: logger) {}
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS \(unescaped: versions) (version int8 PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var current = 0
            for try await version in try await connection.query(
                "SELECT coalesce(max(version), 0) FROM \(unescaped: versions)", logger: logger
            ).decode(Int.self) {
                current = version
            }
            guard current <= steps.count else {
                throw PostgresDatabase.StartupFailure(
                    description:
                        "the database schema is version \(current), newer than this kms (\(steps.count)); upgrade kms")
            }
            for (index, step) in steps.enumerated() where index + 1 > current {
                for statement in step {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO \(unescaped: versions) (version) VALUES (\(index + 1))", logger: logger)
                logger.notice("applied database migration", metadata: ["version": "\(index + 1)"])
            }
        }
    }
}
