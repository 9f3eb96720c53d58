import Foundation
public import KMSPostgres
import Logging

/// The PostgreSQL database named by `KMS_TEST_POSTGRES_URL`, when set: each
/// call to `fresh()` gives its own empty tables (a random prefix) on one pool.
public enum PostgresTestDatabase {
    public static let url = ProcessInfo.processInfo.environment["KMS_TEST_POSTGRES_URL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    private static let base = Task<PostgresDatabase?, any Error> {
        guard let url else { return nil }
        var logger = Logger(label: "kms-test-postgres")
        logger.logLevel = .warning
        return try await PostgresDatabase(url: url, prefix: "kms_test_base_", logger: logger)
    }

    public static func fresh() async throws -> PostgresDatabase {
        try await PostgresDatabase(sharing: shared(), prefix: newPrefix())
    }

    /// The one pool every `fresh()` database shares.
    public static func shared() async throws -> PostgresDatabase {
        guard let base = try await base.value else { throw CocoaError(.featureUnsupported) }
        return base
    }

    /// A table prefix no other test uses.
    public static func newPrefix() -> String {
        "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased() + "_"
    }
}
