import Foundation
import KMSCore
import KMSTestSupport
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing

@testable import KMSPostgres

/// The PostgreSQL runs of the conformance suites happen only with
/// `KMS_TEST_POSTGRES_URL`; without it this test says so as a skip.
@Suite(.shutsDownItsPools) struct PostgresAvailabilityTests {
    @Test(
        .enabled(
            if: PostgresTestDatabase.url != nil,
            "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL runs of the store conformance suites are skipped"))
    func postgresStoresShareSecretsAcrossOpenings() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let first = PostgresSecretBlobStore(database: database)
        #expect(try await first.createBlob(named: "x", wrapped: Data([1])) == Data([1]))
        // Create-if-absent: a second instance gets the first one's blob.
        #expect(
            try await PostgresSecretBlobStore(database: database).createBlob(named: "x", wrapped: Data([2]))
                == Data([1]))
        #expect(try await first.blob(named: "missing") == nil)
    }

    /// A review: every bound (sessions, pending sessions, clients, the last admin) is "take an advisory lock,
    /// then count", which needs each statement's own snapshot. The pool asks for READ COMMITTED whatever the
    /// role's or database's default says; here the role's default is REPEATABLE READ while a pool starts.
    /// Backup and restore (`offline`) run their statements without the request's statement timeout.
    @Test(.enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set: no database to ask"))
    func transactionsAreReadCommittedWhateverTheDefault() async throws {
        let base = try await PostgresTestDatabase.fresh()
        let (client, logger) = (base.client, base.logger)
        try await client.query(
            "ALTER ROLE CURRENT_USER SET default_transaction_isolation = 'repeatable read'", logger: logger)
        let settings: Result<[String], any Error>
        do {
            let database = try await PostgresTestDatabase.fresh()
            func show(_ offline: Bool) async throws -> [String] {
                try await database.transaction("show the settings", offline: offline) { connection in
                    var values: [String] = []
                    for name in ["transaction_isolation", "statement_timeout"] {
                        for try await value in try await connection.query(
                            PostgresQuery(unsafeSQL: "SHOW \(name)"), logger: logger
                        )
                        .decode(String.self) {
                            values.append(value)
                        }
                    }
                    return values
                }
            }
            settings = .success(try await show(false) + show(true))
        } catch {
            settings = .failure(error)
        }
        try await client.query("ALTER ROLE CURRENT_USER RESET default_transaction_isolation", logger: logger)
        let values = try settings.get()
        #expect(values.count == 4 && values[0] == "read committed" && values[2] == "read committed", "\(values)")
        #expect(values.count == 4 && values[1] != "0" && values[3] == "0", "\(values)")
    }

    /// A review finding: PostgresNIO waits for the database's answer whatever the cancellation, and
    /// the deadline's task group waited for it too, so a stalled database held requests for as long as
    /// it stalled. The deadline now answers on time and leaves the call behind.
    @Test(.enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set: no database to stall"))
    func aStalledCallIsAnsweredAtItsDeadline() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let (client, logger) = (database.client, database.logger)
        let start = ContinuousClock.now
        await #expect(throws: KMSError.self) {
            try await database.withDeadline("stall", timeout: .seconds(1)) {
                for try await _ in try await client.query("SELECT pg_sleep(60)", logger: logger) {}
            }
        }
        // The database itself ends the statement at its statement_timeout (5 s in a server, 29 s here): the
        // old code answered then. The bound leaves a loaded machine's pool room (a review of the suite's
        // timing: 2.5 s of slack could be eaten by a stalled cooperative pool) and stays far below 29 s.
        #expect(ContinuousClock.now - start < .seconds(15), "answered at the deadline, not when the database did")
    }

    /// `KMS_DATABASE_TIMEOUT_MS` is every call's deadline, and the database's own statement and lock
    /// timeouts are set below it, so the database's reason arrives first when it has one.
    @Test(.enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set: no database to stall"))
    func theCallTimeoutIsEveryCallsDeadline() async throws {
        let url = try #require(PostgresTestDatabase.url)
        // With a call timeout this short, start-up's probe is bounded by its 10 s floor, which a TLS connect
        // once passed with both cores busy (a clean-clone CI run beside two busy loops): tried again, since
        // what is tested here is the calls' deadline, not the connect's.
        var made: KMSPostgres.PostgresDatabase?
        for attempt in 1...3 where made == nil {
            do {
                made = try await PostgresDatabase(
                    url: url, prefix: PostgresTestDatabase.newPrefix(), logger: .init(label: "test"),
                    callTimeout: .milliseconds(1_500))
            } catch  where attempt < 3 {
                continue
            }
        }
        let database = try #require(made)
        defer { database.shutdown() }
        let (client, logger) = (database.client, database.logger)
        var settings: [String] = []
        for try await (value, ) in try await client.query(
            """
            SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout') || ' '
                || current_setting('idle_in_transaction_session_timeout')
            """, logger: logger
        ).decode((String,).self) {
            settings.append(value)
        }
        #expect(settings == ["1125ms 750ms 1min"])
        // The database's own timeout off for this call, so that the answer is the deadline's.
        let start = ContinuousClock.now
        let error = await #expect(throws: KMSError.self) {
            try await database.withDeadline("stall") {
                try await client.withConnection { connection in
                    try await connection.query("SET statement_timeout = 0", logger: logger)
                    try await connection.query("SELECT pg_sleep(60)", logger: logger)
                }
            }
        }
        // Far below the statement's 60 s, with room for a loaded machine.
        #expect(ContinuousClock.now - start < .seconds(20))
        #expect(error?.detail == "PostgreSQL stall: no answer within 1500 ms", "\(String(describing: error?.detail))")
    }

    /// A review finding: an instance frozen between two statements of a transaction (its process
    /// stopped, its VM paused) kept the advisory locks every instance takes for pending sessions,
    /// sessions and clients, so no instance could start a session or revoke a client until TCP gave up.
    /// The database now ends a transaction left idle past its limit (60 s on the pool, here 2 s on the
    /// frozen connection alone), which frees its locks.
    @Test(
        .enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set: no database to stall"),
        .timeLimit(.minutes(2)))
    func aTransactionLeftIdleLosesItsLocks() async throws {
        let database = try await PostgresTestDatabase.fresh()
        defer { database.shutdown() }
        let (client, logger) = (database.client, database.logger)
        let lock = Int64.random(in: 1...Int64.max)
        let locked = Mutex(false)
        let frozen = Task {
            try await client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                try await connection.query("SET LOCAL idle_in_transaction_session_timeout = '2s'", logger: logger)
                try await connection.query("SELECT pg_advisory_xact_lock(\(lock))", logger: logger)
                locked.withLock { $0 = true }
                // Frozen, holding the lock, sending nothing, until the test ends it. (No statement follows:
                // one sent on a connection the database ended so did not return, docs/postgres.md.)
                try? await Task.sleep(for: .seconds(40))
            }
        }
        // One statement, so the probe's lock is taken and let go on one connection.
        func lockIsFree() async throws -> Bool {
            try await database.withDeadline("probe the lock", timeout: .seconds(20)) {
                var free = false
                for try await (got, ) in try await client.query(
                    "SELECT pg_try_advisory_xact_lock(\(lock))", logger: logger
                ).decode((Bool,).self) {
                    free = got
                }
                return free
            }
        }
        // Polled, not timed, so that a loaded machine only makes it slower: without the database's idle
        // limit the lock stays taken as long as the frozen transaction's connection lives.
        let start = ContinuousClock.now
        while !locked.withLock({ $0 }), ContinuousClock.now - start < .seconds(20) {
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(locked.withLock { $0 }, "the frozen transaction took the lock")
        var freed = false
        while !freed, ContinuousClock.now - start < .seconds(40) {
            freed = try await lockIsFree()
            if !freed { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(freed, "the database ended the idle transaction and freed its lock")
        frozen.cancel()  // not awaited: its connection is the one the database ended
    }

    /// A review finding: PostgresNIO commits a transaction whose task was cancelled, so a change
    /// abandoned at its deadline (the caller told 503, "retry") still happened. It now rolls back.
    @Test(.enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set: no database to stall"))
    func aTransactionAbandonedAtItsDeadlineRollsBack() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let (client, logger, table) = (database.client, database.logger, database.table("probe"))
        try await client.query("CREATE TABLE \(unescaped: table) (n int)", logger: logger)
        await #expect(throws: KMSError.self) {
            try await database.transaction("probe", timeout: .seconds(1)) { connection in
                try await connection.query("INSERT INTO \(unescaped: table) VALUES (1)", logger: logger)
                try await connection.query("SELECT pg_sleep(2)", logger: logger)
            }
        }
        try await Task.sleep(for: .seconds(2))
        var rows = 0
        for try await _ in try await client.query("SELECT n FROM \(unescaped: table)", logger: logger) { rows += 1 }
        #expect(rows == 0, "the abandoned transaction committed")
    }

    /// The last PostgreSQL review: start-up had no deadline of its own, and PostgresNIO waits for an
    /// answer for ever, so a listener that accepts and never answers (another service on the port, a
    /// paused database) held the probe for PostgresNIO's 10 s, which then said "connection refused".
    /// Now the probe says what happened, after the call timeout or 10 s, whichever is longer.
    @Test(.timeLimit(.minutes(1)))
    func aListenerThatNeverAnswersFailsStartup() async throws {
        let mute = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { mute.close(promise: nil) }
        let port = try #require(mute.localAddress?.port)
        await #expect {
            _ = try await PostgresDatabase(
                url: "postgres://kms:p@127.0.0.1:\(port)/kms?sslmode=disable", logger: .init(label: "test"),
                callTimeout: .milliseconds(800))
        } throws: { error in
            "\(error)".contains("cannot connect to 127.0.0.1:\(port)/kms")
                && "\(error)".contains("no answer within 10 s")
        }
    }

    /// A database that answers the probe and then goes silent held start-up for ever: the schema's check
    /// (`migrate: false`, as `kms backup` and `kms doctor` open it) now fails after the call timeout or
    /// 10 s. A migration gets twice `Migrations.lockWaitSeconds` more: it may wait that long for another
    /// instance's, then run as long.
    @Test(
        .enabled("the forwarding proxy needs KMS_TEST_POSTGRES_URL's host to be 127.0.0.1") {
            (try? PostgresURL(PostgresTestDatabase.url ?? ""))?.host == "127.0.0.1"
        },
        .timeLimit(.minutes(1)))
    func aDatabaseSilentAfterTheProbeFailsStartup() async throws {
        let url = try #require(PostgresTestDatabase.url)
        let target = try PostgresURL(url)
        // Connection 0 is the probe; the pool's come after it.
        let proxy = try await ForwardingProxy(forwardingTo: target.host, port: target.port, silentFrom: 1)
        defer { Task { await proxy.close() } }
        let proxied = url.replacingOccurrences(of: "@127.0.0.1:\(target.port)/", with: "@127.0.0.1:\(proxy.port)/")
        #expect(proxied != url)
        await #expect {
            _ = try await PostgresDatabase(
                url: proxied, prefix: PostgresTestDatabase.newPrefix(), logger: .init(label: "test"), migrate: false,
                callTimeout: .seconds(1))
        } throws: { error in
            // The schema step's deadline, or (on a machine so loaded that the probe through this process's
            // own proxy is not answered in 10 s: a CI run with two busy loops, 2026-12-06) the probe's: either
            // way start-up fails within its deadlines instead of waiting for ever, which is what this holds.
            "\(error)".contains("no answer within 10 s")
                && ("\(error)".contains("cannot prepare the schema") || "\(error)".contains("cannot connect"))
        }
    }

    @Test func aBadDatabaseURLIsAClearStartupError() async {
        for (url, fragment) in [
            ("mysql://u@h/db", "postgres://"), ("postgres://host/db", "user"),
            ("postgres://u:p@127.0.0.1:1/db", "cannot connect"),
        ] {
            do {
                _ = try await PostgresDatabase(url: url, logger: .init(label: "test"))
                Issue.record("\(url) should not connect")
            } catch {
                #expect("\(error)".contains(fragment), "\(url): \(error)")
                #expect(!"\(error)".contains(":p@"), "the password must not appear")
            }
        }
    }
}
