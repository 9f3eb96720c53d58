import Foundation
public import KMSPostgres
import Logging
import Synchronization

/// The PostgreSQL database named by `KMS_TEST_POSTGRES_URL`, when set: each
/// call to `fresh()` gives its own empty tables (a random prefix) and its own
/// small pool, as each `kms serve` instance has its own: a test that keeps a
/// pool busy (a thousand concurrent requests on one session) cannot starve
/// another test's calls past their deadlines on a slow machine.
///
/// Their calls wait `callTimeout` (30 s), not a server's 6 s: these tests check
/// what the stores do, and a CI machine whose two cores are taken by other
/// work (and by the parallel tests themselves) answered some calls after 6 s.
/// The deadline itself is tested with explicit timeouts (`PostgresAvailabilityTests`).
public enum PostgresTestDatabase {
    public static let url = ProcessInfo.processInfo.environment["KMS_TEST_POSTGRES_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    private static let logger: Logger = {
        var logger = Logger(label: "kms-test-postgres")
        logger.logLevel = .warning
        return logger
    }()

    /// The deadline of the test stores' calls.
    public static let callTimeout: Duration = .seconds(30)
    /// `KMS_DATABASE_TIMEOUT_MS` of the servers tests start on PostgreSQL (the most it takes).
    public static let serverTimeoutMs = "15000"

    private static let base = Task<PostgresDatabase?, any Error> {
        guard let url else { return nil }
        return try await PostgresDatabase(url: url, prefix: "kms_test_base_", logger: logger, callTimeout: callTimeout)
    }

    public static func fresh() async throws -> PostgresDatabase {
        try await instance(prefix: newPrefix(), maximumConnections: 4)
    }

    /// A pool of its own on `prefix`, as one more `kms serve` instance on the same tables would have.
    public static func instance(prefix: String, maximumConnections: Int) async throws -> PostgresDatabase {
        guard let url else { throw CocoaError(.featureUnsupported) }
        let database = try await PostgresDatabase(
            url: url, prefix: prefix, logger: logger, maximumConnections: maximumConnections,
            callTimeout: callTimeout)
        madeInThisTest?.add(database)
        return database
    }

    /// The pools `fresh()` and `instance` make within a test, shut down when the test ends (the suites'
    /// `.shutsDownItsPools` trait sets it): without it each test's pool and connections stayed open to
    /// the end of the run.
    @TaskLocal public static var madeInThisTest: Pools?

    public final class Pools: Sendable {
        private let pools = Mutex<[PostgresDatabase]>([])

        public init() {}

        func add(_ database: PostgresDatabase) { pools.withLock { $0.append(database) } }

        public func shutdown() {
            for pool in pools.withLock({ $0 }) { pool.shutdown() }
        }
    }

    /// A pool for tests that migrate many prefixes on one pool.
    public static func shared() async throws -> PostgresDatabase {
        guard let base = try await base.value else { throw CocoaError(.featureUnsupported) }
        return base
    }

    /// A table prefix no other test uses.
    public static func newPrefix() -> String {
        "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased() + "_"
    }
}
