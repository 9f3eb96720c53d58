public import Foundation
import Synchronization

/// Where the core reads the time. Injected so that tests move time (TTLs,
/// grace periods) instead of sleeping.
public protocol KMSClock: Sendable {
    func now() -> Date
}

/// The wall clock.
public struct SystemClock: KMSClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// Another clock moved by a fixed offset: `KMS_TEST_CLOCK_OFFSET_MS`
/// (lifecycle-v1 rule 9.1), so end-to-end tests of deletion dates and
/// rotation schedules restart the server "a week later" instead of waiting.
public struct OffsetClock: KMSClock {
    public let base: any KMSClock
    public let offsetMs: Int64

    public init(base: any KMSClock, offsetMs: Int64) {
        self.base = base
        self.offsetMs = offsetMs
    }

    public func now() -> Date { base.now().addingTimeInterval(Double(offsetMs) / 1000) }
}

/// A clock that stands still until a test moves it.
public final class ManualClock: KMSClock {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    public func advance(milliseconds: Int64) {
        current.withLock { $0 = $0.addingTimeInterval(Double(milliseconds) / 1000) }
    }

    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}
