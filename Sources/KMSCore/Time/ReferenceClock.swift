public import Foundation

/// The clock this host's is judged against before anything is done on a date (the database's on
/// PostgreSQL; on the file store the host's clock at start-up advanced by the monotonic clock): the key
/// scheduler holds deletions and rotations while the two differ, and the changes that write a date
/// (scheduling a deletion, a rotation, a rotation schedule) are refused meanwhile. A deletion scheduled
/// while the host's clock ran 8 days behind was dated a day in the past, and the key was gone for good at
/// the next pass once the clock was put right; a rotation made so retired the version before it at once,
/// everywhere (a review).
public struct ReferenceClock: Sendable {
    /// How far the two may differ.
    public static let skewLimit: TimeInterval = 60

    /// The reference's time now.
    public let now: @Sendable () async throws(KMSError) -> Date
    /// What it is, for messages ("the database's clock").
    public let name: String
    /// Whether it is counted in this process (the file store's), so that reading it often judges a step by
    /// when it happened (`KeyScheduler` reads it every 10 s between passes); the database's is not.
    public let isCounted: Bool

    public init(name: String, isCounted: Bool = false, now: @escaping @Sendable () async throws(KMSError) -> Date) {
        self.name = name
        self.isCounted = isCounted
        self.now = now
    }

    /// How many seconds this host's clock is ahead of the reference (negative: behind).
    public func hostAhead() async throws(KMSError) -> TimeInterval {
        -(try await now().timeIntervalSinceNow)
    }

    /// Throws `503 server_busy` while this host's clock differs from the reference by more than
    /// `skewLimit`: a change that writes a date would write a wrong one.
    public func requireAgreement() async throws(KMSError) {
        let ahead = try await hostAhead()
        guard abs(ahead) > Self.skewLimit else { return }
        // What the operator does depends on the reference (a review: a restart does nothing on PostgreSQL).
        let remedy = isCounted ? "by restarting kms serve once the time is right" : "by putting the host's clock right"
        throw KMSError(
            .serverBusy,
            "this server's clock differs from its reference clock, so changes that set a date (a deletion, a "
                + "rotation, a rotation schedule) wait until the operator puts it right (\(remedy)); try again later",
            retryAfterSeconds: 60,
            detail: "host clock \(Int(ahead)) s ahead of \(name)")
    }
}
