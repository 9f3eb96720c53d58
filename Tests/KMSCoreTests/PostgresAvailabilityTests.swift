import Foundation
import KMSCore
import KMSPostgres
import KMSTestSupport
import Testing

/// The PostgreSQL runs of the conformance suites happen only with
/// `KMS_TEST_POSTGRES_URL`; without it this test says so as a skip.
@Suite struct PostgresAvailabilityTests {
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
