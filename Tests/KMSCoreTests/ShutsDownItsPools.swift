import KMSTestSupport
import Testing

/// Shuts down the PostgreSQL pools each test (each case of a parameterized one) made with
/// `PostgresTestDatabase.fresh()` when it ends, passed or failed.
struct ShutsDownItsPools: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        let pools = PostgresTestDatabase.Pools()
        defer { pools.shutdown() }
        try await PostgresTestDatabase.$madeInThisTest.withValue(pools) { try await function() }
    }
}

extension Trait where Self == ShutsDownItsPools {
    /// See `ShutsDownItsPools`.
    static var shutsDownItsPools: Self { Self() }
}
