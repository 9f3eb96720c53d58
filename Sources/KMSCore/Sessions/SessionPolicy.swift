public import Foundation

/// The session settings of api-v1.md's configuration table, in one value.
public struct SessionPolicy: Sendable, Equatable {
    public var ttlMs: Int64 = 900_000
    public var sliding = true
    public var maxLifetimeMs: Int64 = 86_400_000
    public var initTtlMs: Int64 = 60_000
    public var pendingPerAddress = 64
    public var pendingMax = 10_000
    public var sessionsMax = 100_000
    /// Live sessions one enrolled client may hold (identity-v1's client id; not counted without client
    /// authentication): a review filled `sessionsMax` from one device with no grant, which refused every
    /// other key exchange, the admin's included, so nobody could revoke it.
    public var sessionsPerClient = 1_000
    public var rotateMax = 5
    public var rotateWindowMs: Int64 = 10_000
    public var tokenPrefix: String?

    public init() {}

    /// The expiry of a session created at `createdAt`: the TTL, capped by the absolute lifetime.
    public func initialExpiry(createdAt: Date) -> Date {
        min(createdAt.addingMilliseconds(ttlMs), createdAt.addingMilliseconds(maxLifetimeMs))
    }

    /// Where an authenticated request at `now` moves the expiry (unchanged when not sliding).
    public func slidExpiry(current: Date, now: Date, absoluteExpiry: Date) -> Date {
        guard sliding else { return current }
        return max(current, min(now.addingMilliseconds(ttlMs), absoluteExpiry))
    }
}

extension Date {
    public func addingMilliseconds(_ milliseconds: Int64) -> Date {
        addingTimeInterval(Double(milliseconds) / 1000)
    }
}

/// Whole seconds until `date`, at least 1: the value of a `Retry-After` header.
public func retryAfterSeconds(until date: Date, now: Date) -> Int {
    max(1, Int(date.timeIntervalSince(now).rounded(.up)))
}
