import Logging
import ServiceLifecycle

/// Says, every `interval` and once at shutdown, how many log lines each thinned kind left out since its last
/// line. A thinned line carries the count of those left out before it, but only when the next line of its
/// kind comes: the last of a burst could wait indefinitely (an observability review). A kind with nothing
/// left out says nothing; the count it gives restarts, so the lines' counts still add up.
///
/// Each kind is said at the level of its own lines, and not at all (its count left to its next line) when
/// the log's level hides them: taken and dropped, the count was lost to the lines that show (a review: at
/// `KMS_LOG_LEVEL=warning` a refused address's line came to under-count).
struct LeftOutLogLines: Service {
    /// A thinned kind: the name the line gives, its sampler, and the level of the lines it thins.
    struct Kind: Sendable {
        let name: String
        let sampler: RefusalLogSampler
        let level: Logger.Level
    }

    let kinds: [Kind]
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatUntilShutdown(every: interval) { report() }
        report()
    }

    func report() {
        for kind in kinds where logger.logLevel <= kind.level {
            let leftOut = kind.sampler.takeLeftOut()
            guard leftOut > 0 else { continue }
            logger.log(
                level: kind.level, "log lines left out", metadata: ["kind": "\(kind.name)", "leftOut": "\(leftOut)"])
        }
    }
}
