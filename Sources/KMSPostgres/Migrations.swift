import KMSCore
import Logging
import PostgresNIO

/// Versioned schema changes, applied in order at start-up under an advisory
/// lock, so instances starting together apply each migration once.
///
/// The lock is keyed by the table prefix: migrations of unrelated prefixes
/// (the tests give every store its own) never wait on each other, while
/// instances of one deployment starting together queue on it. The queue waits
/// up to `lockWaitSeconds` (set for this transaction only, overriding the
/// pool's short `lock_timeout`), because a starting instance should wait for
/// another's migration, not fail because the database is slow today.
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
            ],
            // 2: the client registry (identity-v1): sealed records with their lookup hints.
            [
                """
                CREATE TABLE \(t("clients")) (
                    client_id text COLLATE "C" PRIMARY KEY, name text NOT NULL, fingerprint text NOT NULL UNIQUE,
                    active boolean NOT NULL, admin boolean NOT NULL, access_key_ids text[] NOT NULL,
                    sealed bytea NOT NULL, revision int8 NOT NULL)
                """,
                "CREATE UNIQUE INDEX ON \(t("clients")) (name) WHERE active",
                "CREATE INDEX ON \(t("clients")) USING gin (access_key_ids)",
                // Sessions belong to clients ('' with KMS_CLIENT_AUTH=off; NULL: made before this migration).
                "ALTER TABLE \(t("sessions")) ADD COLUMN client_id text",
                "CREATE INDEX ON \(t("sessions")) (client_id)",
            ],
            // 3: key lifecycle (lifecycle-v1 section 7, its "migration 2": identity-v1 took number 2 here).
            [
                """
                ALTER TABLE \(t("keys")) ADD COLUMN state text NOT NULL DEFAULT 'enabled',
                  ADD COLUMN deletion_date timestamptz, ADD COLUMN next_rotation_at timestamptz
                """,
                """
                CREATE TABLE \(t("aliases")) (
                    alias text COLLATE "C" PRIMARY KEY,
                    key_id text NOT NULL REFERENCES \(t("keys")) (key_id) ON DELETE CASCADE,
                    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
                """,
                "CREATE INDEX ON \(t("aliases")) (key_id)",
                """
                INSERT INTO \(t("aliases")) SELECT alias, key_id, (record::json->>'createdAt')::timestamptz,
                  (record::json->>'createdAt')::timestamptz FROM \(t("keys")) WHERE alias IS NOT NULL
                """,
                "ALTER TABLE \(t("keys")) DROP COLUMN alias",
                "CREATE INDEX ON \(t("keys")) (next_rotation_at) WHERE next_rotation_at IS NOT NULL",
                "CREATE INDEX ON \(t("keys")) (deletion_date) WHERE deletion_date IS NOT NULL",
            ],
        ]
    }

    /// How long a migration may wait for another instance's migration of the
    /// same prefix, and how long one statement of it may run.
    static let lockWaitSeconds = 300

    /// Refuses a schema other than this binary's, changing nothing.
    func requireCurrent() async throws {
        var current = 0
        let query = PostgresQuery(
            unsafeSQL: "SELECT coalesce(max(version), 0) FROM \(database.table("schema_version"))")
        do {
            for try await version in try await database.client.query(query, logger: database.logger).decode(Int.self) {
                current = version
            }
        } catch {
            current = 0  // no schema_version table: never started
        }
        guard current == steps.count else {
            throw StartupFailure(
                description:
                    "the database schema is version \(current) and this kms expects \(steps.count): start this kms serve once to migrate (or use the matching kms)"
            )
        }
    }

    func apply() async throws {
        let versions = database.table("schema_version")
        let logger = database.logger
        _ = try await database.client.withTransaction(logger: logger) { connection in
            let wait = PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = '\(Self.lockWaitSeconds)s'")
            try await connection.query(wait, logger: logger)
            let run = PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = '\(Self.lockWaitSeconds)s'")
            try await connection.query(run, logger: logger)
            try await database.lock(.migrations, on: connection)
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
                throw StartupFailure(
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
