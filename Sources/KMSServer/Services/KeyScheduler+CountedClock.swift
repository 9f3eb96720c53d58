import Foundation
import KMSCore
import KMSPostgres
import Synchronization

extension KeyScheduler {
    /// How long after boot a step of the host's clock is taken for its first synchronisation.
    static let bootSettling: TimeInterval = 600

    /// The file store's reference: the host's clock as it read at start-up, advanced by the
    /// monotonic clock since (`ContinuousClock`: on Linux `CLOCK_BOOTTIME`, which counts suspended
    /// time as the wall clock does and is slewed by NTP as it is, but never stepped). A wall clock
    /// stepped forward while the server runs (an unauthenticated NTP answer, a mistyped `date -s`)
    /// then disagrees with it, and deletions wait: without it one step past a key's deletion date
    /// deleted the key for good at the next pass (a review).
    ///
    /// A step first seen by a reading whose previous reading came within `bootSettling` of boot (`uptime`)
    /// is taken as the host's first synchronisation
    /// and becomes the new anchor: a Raspberry Pi boots with the time it last saved and steps at its
    /// first NTP answer, often after `kms serve` started, which held every deletion and rotation
    /// until a restart (a review). A wrong answer then is the case a reference cannot catch anyway,
    /// a clock already wrong when the server starts (docs/threat-model.md section 4).
    static func countedSinceStart(
        startingAt wall: Date = Date(),
        uptime: @escaping @Sendable () -> TimeInterval = { ProcessInfo.processInfo.systemUptime }
    ) -> @Sendable () async throws(KMSError) -> Date {
        // `settling`: whether the previous reading came within `bootSettling` of boot, so that a step
        // made then is judged by when it happened, not when a pass (up to an hour apart) first sees it.
        let anchor = Mutex((wall: wall, counted: ContinuousClock.now, settling: uptime() < bootSettling))
        return { () async throws(KMSError) -> Date in
            anchor.withLock { anchor in
                let settling = anchor.settling
                anchor.settling = uptime() < bootSettling
                let elapsed = (ContinuousClock.now - anchor.counted).components
                let counted = anchor.wall.addingTimeInterval(
                    Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
                let now = Date()
                guard abs(now.timeIntervalSince(counted)) > PostgresDatabase.clockSkewLimit, settling else {
                    return counted
                }
                anchor = (now, ContinuousClock.now, anchor.settling)
                return now
            }
        }
    }
}
