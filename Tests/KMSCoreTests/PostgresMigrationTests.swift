import Foundation
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSTestSupport
import Logging
import PostgresNIO
import Testing

/// PostgresNIO has a protocol of the same name.
typealias MigrationTestDatabase = KMSPostgres.PostgresDatabase

/// Schema migrations under concurrency: unrelated prefixes never wait on each
/// other, and instances of one prefix starting together wait for each other
/// (longer than the pool's 3 s `lock_timeout`) instead of failing.
@Suite(
    .enabled(
        if: PostgresTestDatabase.url != nil,
        "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL migration tests are skipped"))
struct PostgresMigrationTests {
    static let logger: Logger = {
        var logger = Logger(label: "kms-test-migrations")
        logger.logLevel = .warning
        return logger
    }()

    /// The versions recorded for a prefix, in order.
    static func versions(_ database: MigrationTestDatabase, prefix: String) async throws -> [Int] {
        var versions: [Int] = []
        let query = PostgresQuery(unsafeSQL: "SELECT version FROM \(prefix)schema_version ORDER BY version")
        for try await version in try await database.client.query(query, logger: logger).decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    @Test func tenPrefixesMigrateAtOnce() async throws {
        let base = try await PostgresTestDatabase.shared()
        let prefixes = (0..<10).map { _ in PostgresTestDatabase.newPrefix() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for prefix in prefixes {
                group.addTask { _ = try await MigrationTestDatabase(sharing: base, prefix: prefix) }
            }
            try await group.waitForAll()
        }
        let expected = try await Self.versions(base, prefix: "kms_test_base_")
        #expect(!expected.isEmpty)
        for prefix in prefixes {
            #expect(try await Self.versions(base, prefix: prefix) == expected, "\(prefix)")
        }
    }

    @Test func fiveInstancesOfOnePrefixMigrateOnce() async throws {
        let url = try #require(PostgresTestDatabase.url)
        let prefix = PostgresTestDatabase.newPrefix()
        let instances = try await withThrowingTaskGroup(of: MigrationTestDatabase.self) { group in
            for _ in 0..<5 {
                // The test stores' deadline (30 s), as every other pool of the tests has: with the default,
                // start-up's 10 s floor, one of five TLS connections at once missed it in a CI run with both
                // cores held by busy loops.
                group.addTask {
                    try await MigrationTestDatabase(
                        url: url, prefix: prefix, logger: Self.logger, callTimeout: PostgresTestDatabase.callTimeout)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        defer { instances.forEach { $0.shutdown() } }
        #expect(instances.count == 5)
        let expected = try await Self.versions(PostgresTestDatabase.shared(), prefix: "kms_test_base_")
        // Each migration recorded once: the version column is the primary key, and
        // a second application of a step would have failed on its CREATE TABLE.
        #expect(try await Self.versions(instances[0], prefix: prefix) == expected)
    }

    /// A migration held up longer than the pool's `lock_timeout` (here 1 s) by
    /// another instance's migration of the same prefix waits and succeeds;
    /// one of another prefix is not held up at all. No timing is asserted:
    /// the lock is held until the test releases it.
    @Test func aMigrationWaitsForAnotherOfItsPrefixOnly() async throws {
        let base = try await PostgresTestDatabase.shared()
        let prefix = PostgresTestDatabase.newPrefix()
        let holding = AsyncStream.makeStream(of: Void.self)
        let release = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await base.client.withTransaction(logger: Self.logger) { connection in
                try await connection.query(
                    "SELECT pg_advisory_xact_lock(7311, hashtext(\(prefix)))", logger: Self.logger)
                holding.continuation.yield()
                for await _ in release.stream { break }
            }
        }
        for await _ in holding.stream { break }
        // Another prefix migrates while the lock is held.
        _ = try await MigrationTestDatabase(sharing: base, prefix: PostgresTestDatabase.newPrefix())
        // This prefix waits, past its pool's lock_timeout, for the holder: a pool of its own whose lock_timeout
        // (half its 2 s call timeout) the 4 s hold outlasts, so only the migration's own raised timeouts let
        // it wait (a review of the suite: the shared test pool's 15 s let it pass without them).
        let url = try #require(PostgresTestDatabase.url)
        let waiting = Task {
            try await MigrationTestDatabase(
                url: url, prefix: prefix, logger: Self.logger, maximumConnections: 2, callTimeout: .seconds(2))
        }
        // Held for twice the waiter's lock_timeout from when it waits, not from when its task was made (a
        // review: a loaded machine's connection set-up could eat the hold).
        var waits = 0
        for _ in 0..<300 where waits == 0 {
            for try await count in try await base.client.query(
                """
                SELECT count(*)::int8 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                  AND classid = 7311 AND objid = hashtext(\(prefix))::oid
                """, logger: Self.logger
            ).decode(Int.self) {
                waits = count
            }
            if waits == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(waits == 1, "the second migration waits for the lock")
        try await Task.sleep(for: .seconds(2))
        release.continuation.yield()
        try await holder.value
        let database = try await waiting.value
        defer { database.shutdown() }
        #expect(try await Self.versions(database, prefix: prefix).isEmpty == false)
    }
}

/// lifecycle-v1 section 7's migration (here number 3) carries aliases of an
/// existing database over into `kms_aliases`, with the key's `createdAt`.
@Suite(
    .enabled(
        if: PostgresTestDatabase.url != nil,
        "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL migration tests are skipped"))
struct PostgresLifecycleMigrationTests {
    @Test func aliasesOfASchema2DatabaseBecomeRecords() async throws {
        let url = try #require(PostgresTestDatabase.url)
        let base = try await PostgresTestDatabase.shared()
        let prefix = PostgresTestDatabase.newPrefix()
        let keyId = KeyIdentifier.newKeyId()
        let record = """
            {"format": "kms-key-v1", "keyId": "\(keyId)", "alias": "photos", "createdAt": "2026-01-02T03:04:05.678Z", \
            "revision": 1, "versions": [{"version": 1, "createdAt": "2026-01-02T03:04:05.678Z", "status": "active", \
            "wrappedKey": "AAAA"}]}
            """
        // The keys table as migrations 1 and 2 left it, with one aliased key.
        for statement in [
            "CREATE TABLE \(prefix)keys (key_id text PRIMARY KEY, alias text UNIQUE, revision int8 NOT NULL, record text NOT NULL)",
            // Migration 4 ends every session: the table must exist (its columns do not matter here).
            "CREATE TABLE \(prefix)sessions (id text PRIMARY KEY, window_bits bytea NOT NULL)",
            "CREATE TABLE \(prefix)schema_version (version int8 PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO \(prefix)schema_version (version) VALUES (1), (2)",
        ] {
            try await base.client.query(PostgresQuery(unsafeSQL: statement), logger: PostgresMigrationTests.logger)
        }
        try await base.client.query(
            "INSERT INTO \(unescaped: prefix)keys (key_id, alias, revision, record) VALUES (\(keyId), 'photos', 1, \(record))",
            logger: PostgresMigrationTests.logger)

        let migrated = try await MigrationTestDatabase(url: url, prefix: prefix, logger: PostgresMigrationTests.logger)
        defer { migrated.shutdown() }
        let store = PostgresKeyStore(database: migrated, lifecycle: KeyLifecycle(graceMs: 1000), clock: SystemClock())
        let key = try #require(try await store.key(alias: "photos"))
        #expect(key.keyId == keyId && key.aliases == ["photos"] && key.state == .enabled)
        let alias = try #require(try await store.alias("photos"))
        #expect(alias.createdAt == Timestamp.parse("2026-01-02T03:04:05.678Z"))
        #expect(alias.updatedAt == alias.createdAt)
    }
}
