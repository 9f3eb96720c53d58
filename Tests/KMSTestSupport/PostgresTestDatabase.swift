import Foundation
public import KMSPostgres
import Logging

/// The PostgreSQL database named by `KMS_TEST_POSTGRES_URL`, when set: each
/// call to `fresh()` gives its own empty tables (a random prefix) and its own
/// small pool, as each `kms serve` instance has its own: a test that keeps a
/// pool busy (a thousand concurrent requests on one session) cannot starve
/// another test's calls past their deadlines on a slow machine.
public enum PostgresTestDatabase {
    public static let url = ProcessInfo.processInfo.environment["KMS_TEST_POSTGRES_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    private static let logger: Logger = {
        var logger = Logger(label: "kms-test-postgres")
        logger.logLevel = .warning
        return logger
    }()

    private static let base = Task<PostgresDatabase?, any Error> {
        guard let url else { return nil }
        return try await PostgresDatabase(url: url, prefix: "kms_test_base_", logger: logger)
    }

    public static func fresh() async throws -> PostgresDatabase {
        guard let url else { throw CocoaError(.featureUnsupported) }
        return try await PostgresDatabase(url: url, prefix: newPrefix(), logger: logger, maximumConnections: 4)
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
