import Logging
import ServiceLifecycle

/// Says, every `interval` and once at shutdown, how many log lines each thinned kind left out since its last
/// line. A thinned line carries the count of those left out before it, but only when the next line of its
/// kind comes: the last of a burst could wait indefinitely (an observability review). A kind with nothing
/// left out says nothing; the count it gives restarts, so the lines' counts still add up.
struct LeftOutLogLines: Service {
    /// Each thinned kind, named as the notice names it, and its sampler.
    let kinds: [(name: String, sampler: RefusalLogSampler)]
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await repeatUntilShutdown(every: interval) { report() }
        report()
    }

    func report() {
        for (name, sampler) in kinds {
            let leftOut = sampler.takeLeftOut()
            guard leftOut > 0 else { continue }
            logger.notice("log lines left out", metadata: ["kind": "\(name)", "leftOut": "\(leftOut)"])
        }
    }
}
