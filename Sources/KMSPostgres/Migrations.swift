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
            // 4: issue 18. The replay window in one statement (no BEGIN/SELECT/UPDATE/COMMIT round
            // trips), and a notification per key or alias change so that instances may cache keys.
            [
                "DELETE FROM \(t("sessions"))",
                "ALTER TABLE \(t("sessions")) ADD COLUMN window_ring bit(1024) NOT NULL DEFAULT repeat('0', 1024)::bit(1024)",
                // An instance of an older version still running (it checked the schema when it started) writes
                // its window to window_bits: refused, so it answers 503 rather than keep a second window in
                // which a seq accepted here would be fresh again.
                "ALTER TABLE \(t("sessions")) ADD CONSTRAINT \(t("window_bits_retired")) CHECK (octet_length(window_bits) = 0)",
            ]
                + [Self.acceptSequenceFunction(sessions: t("sessions"), clients: t("clients"), name: t("accept_seq"))]
                + Self.keyNotifications(database: database),
            // 5: issue 18. Concurrent accept_seq calls of one instance in one statement (AcceptBatcher).
            [Self.acceptBatchFunction(sessions: t("sessions"), accept: t("accept_seq"), name: t("accept_seq_batch"))],
            // 6: encryption counts per key version, beside the records (`KeyStore.addEncryptions`); only a
            // table, so instances of the previous version keep running beside this one.
            [
                """
                CREATE TABLE \(t("key_usage")) (
                    key_id text NOT NULL REFERENCES \(t("keys")) (key_id) ON DELETE CASCADE,
                    version int8 NOT NULL, encryptions int8 NOT NULL, PRIMARY KEY (key_id, version))
                """
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
        } catch  where PostgresDatabase.sqlState(error) == "42P01" {
            current = 0  // no schema_version table: never started
        } catch {
            // Anything else (no permission, a dropped connection) is not "never migrated": saying so
            // would send the operator to migrate, perhaps the wrong database or prefix.
            throw StartupFailure(
                description: "cannot read the database's schema version: \(PostgresDatabase.describe(error))")
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

    /// `accept_seq(id, token hash, seq, now, ttl ms, sliding, window size)` →
    /// `(outcome, expires, client columns…)`: 0 accepted (with the slid expiry,
    /// and the session's client row read after the update, as identity-v1
    /// section 3 orders), 1 no such live session for this token, 2 replayed or
    /// too old. The same rule as
    /// `ReplayWindow.accept` and `SessionPolicy.slidExpiry`, under the row
    /// lock of this one statement; `SessionStoreConformance` runs both. The
    /// window is a ring in its own column since this migration, `window_ring
    /// bit(1024)`: seq `s` is bit `s mod 1024` (from the left), so moving the
    /// window is one `set_bit` and at most two `overlay`s of zeros, whatever
    /// the jump, instead of shifting 128 bytes in a PL/pgSQL loop on every
    /// forward seq.
    /// `PostgresSessionStore` converts to and from `ReplayWindow`'s shifted
    /// form. Sessions whose window is in the old column cannot be carried over,
    /// so this migration ends them (clients make a new key exchange).
    static func acceptSequenceFunction(sessions: String, clients: String, name: String) -> String {
        """
        CREATE FUNCTION \(name)(p_id text, p_token bytea, p_seq int8, p_now timestamptz, p_ttl_ms int8,
                                 p_sliding boolean, p_size int8)
        RETURNS TABLE (outcome int, expires timestamptz, c_id text, c_name text, c_fingerprint text,
                       c_active boolean, c_admin boolean, c_access_key_ids text[], c_sealed bytea, c_revision int8)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            r record;
            ring bit(1024);
            new_highest int8;
            k int8;
            start int;
            first int;
            new_expiry timestamptz;
        BEGIN
            SELECT s.token_hash, s.expires_at, s.absolute_expiry, s.window_highest, s.window_ring, s.client_id INTO r
              FROM \(sessions) s WHERE s.id = p_id FOR UPDATE;
            IF NOT FOUND OR r.expires_at <= p_now OR r.token_hash <> p_token THEN
                RETURN QUERY SELECT 1, NULL::timestamptz, NULL, NULL, NULL, NULL::boolean, NULL::boolean, NULL::text[],
                                    NULL::bytea, NULL::int8;
                RETURN;
            END IF;
            ring := r.window_ring;
            new_highest := r.window_highest;
            IF p_seq <= 0 THEN
                RETURN QUERY SELECT 2, NULL::timestamptz, NULL, NULL, NULL, NULL::boolean, NULL::boolean, NULL::text[],
                                    NULL::bytea, NULL::int8;
                RETURN;
            END IF;
            IF p_seq > new_highest THEN
                k := p_seq - new_highest;
                IF k >= 1024 THEN
                    ring := repeat('0', 1024)::bit(1024);
                ELSIF k > 1 THEN
                    -- The ring positions of the seqs the window moves over held seqs a window ago.
                    start := ((new_highest + 1) % 1024)::int;
                    first := LEAST(k - 1, 1024 - start)::int;
                    ring := overlay(ring PLACING repeat('0', first)::bit varying FROM start + 1 FOR first)::bit(1024);
                    IF k - 1 > first THEN
                        ring := overlay(ring PLACING repeat('0', (k - 1 - first)::int)::bit varying FROM 1
                                        FOR (k - 1 - first)::int)::bit(1024);
                    END IF;
                END IF;
                ring := set_bit(ring, (p_seq % 1024)::int, 1);
                new_highest := p_seq;
            ELSE
                k := new_highest - p_seq;
                IF k >= p_size OR k >= 1024 OR get_bit(ring, (p_seq % 1024)::int) = 1 THEN
                    RETURN QUERY SELECT 2, NULL::timestamptz, NULL, NULL, NULL, NULL::boolean, NULL::boolean,
                                        NULL::text[], NULL::bytea, NULL::int8;
                    RETURN;
                END IF;
                ring := set_bit(ring, (p_seq % 1024)::int, 1);
            END IF;
            new_expiry := r.expires_at;
            IF p_sliding THEN
                new_expiry := GREATEST(r.expires_at,
                                       LEAST(p_now + p_ttl_ms * interval '1 millisecond', r.absolute_expiry));
            END IF;
            UPDATE \(sessions) SET window_highest = new_highest, window_ring = ring, expires_at = new_expiry
              WHERE id = p_id;
            RETURN QUERY SELECT 0, new_expiry, c.client_id::text, c.name, c.fingerprint, c.active, c.admin,
                                c.access_key_ids, c.sealed, c.revision
              FROM (SELECT 1) AS one LEFT JOIN \(clients) c ON c.client_id = r.client_id;
        END
        $fn$
        """
    }

    /// `accept_seq_batch(ids[], token hashes[], seqs[], nows[], ttls ms[],
    /// slidings[], window size)` → `(ord, accept_seq's columns…)`: entry `i`
    /// is `accept_seq` on the arrays' element `i`, one after another in this
    /// one transaction, so an entry sees every entry before it (a seq twice
    /// is accepted once). A batch never waits for a row lock while it holds
    /// others: a session row another transaction holds is answered 3
    /// (contended) without waiting, and its caller runs alone. So one client's
    /// traffic can neither stall other sessions' entries behind its row nor
    /// make a batch part of a deadlock.
    static func acceptBatchFunction(sessions: String, accept: String, name: String) -> String {
        """
        CREATE FUNCTION \(name)(p_ids text[], p_tokens bytea[], p_seqs int8[], p_nows timestamptz[],
                                 p_ttls int8[], p_slidings boolean[], p_size int8)
        RETURNS TABLE (ord int, outcome int, expires timestamptz, c_id text, c_name text, c_fingerprint text,
                       c_active boolean, c_admin boolean, c_access_key_ids text[], c_sealed bytea, c_revision int8)
        LANGUAGE plpgsql AS $fn$
        BEGIN
            FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
                PERFORM 1 FROM \(sessions) s WHERE s.id = p_ids[i] FOR UPDATE SKIP LOCKED;
                IF NOT FOUND AND EXISTS (SELECT 1 FROM \(sessions) s WHERE s.id = p_ids[i]) THEN
                    RETURN QUERY SELECT i, 3, NULL::timestamptz, NULL::text, NULL::text, NULL::text, NULL::boolean,
                                        NULL::boolean, NULL::text[], NULL::bytea, NULL::int8;
                    CONTINUE;
                END IF;
                RETURN QUERY SELECT i, a.* FROM \(accept)(p_ids[i], p_tokens[i], p_seqs[i], p_nows[i], p_ttls[i],
                                                          p_slidings[i], p_size) AS a;
            END LOOP;
        END
        $fn$
        """
    }

    /// A `pg_notify` on `<prefix>keys` naming the key, after every change to a
    /// key row or an alias row (old and new key), from any writer (another
    /// instance, the scheduler, a restore): what lets an instance cache key
    /// records and still see a change elsewhere within milliseconds.
    static func keyNotifications(database: PostgresDatabase) -> [String] {
        let t = database.table
        return [
            """
            CREATE FUNCTION \(t("notify_key"))() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('\(database.keyChannel)', OLD.key_id); END IF;
                IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('\(database.keyChannel)', NEW.key_id); END IF;
                RETURN NULL;
            END
            $fn$
            """,
            """
            CREATE TRIGGER \(t("keys_notify")) AFTER INSERT OR UPDATE OR DELETE ON \(t("keys"))
            FOR EACH ROW EXECUTE FUNCTION \(t("notify_key"))()
            """,
            """
            CREATE TRIGGER \(t("aliases_notify")) AFTER INSERT OR UPDATE OR DELETE ON \(t("aliases"))
            FOR EACH ROW EXECUTE FUNCTION \(t("notify_key"))()
            """,
        ]
    }
}
