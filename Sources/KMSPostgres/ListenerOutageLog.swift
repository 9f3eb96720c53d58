import Logging
import Synchronization

/// What the key-change listener says about an outage of its connection. It tries again every second, and
/// it warned at every try: a database down for an hour wrote 3,600 identical warnings into the operator's
/// log (an operator's walkthrough), and nothing said when the notifications came back. Now: the first failure
/// at warning; then one warning every `repeatEvery` while it lasts, with how long and how many tries, the
/// others at debug; and one line at notice when the listener is back.
final class ListenerOutageLog: Sendable {
    private struct Outage {
        let since: ContinuousClock.Instant
        var lastWarned: ContinuousClock.Instant
        var failures: Int
    }

    private let outage = Mutex<Outage?>(nil)
    private let logger: Logger
    private let repeatEvery: Duration

    init(logger: Logger, repeatEvery: Duration = .seconds(60)) {
        self.logger = logger
        self.repeatEvery = repeatEvery
    }

    /// A try that failed, or a connection lost: `message` and the error's `detail`.
    func failed(_ message: Logger.Message, detail: String) {
        let now = ContinuousClock.now
        let said: Outage? = outage.withLock { outage in
            guard var current = outage else {
                outage = Outage(since: now, lastWarned: now, failures: 1)
                return outage
            }
            current.failures += 1
            defer { outage = current }
            guard now - current.lastWarned >= repeatEvery else { return nil }
            current.lastWarned = now
            return current
        }
        guard let said else {
            logger.debug(message, metadata: ["detail": "\(detail)"])
            return
        }
        var metadata: Logger.Metadata = ["detail": "\(detail)"]
        if said.failures > 1 {
            metadata["outageSeconds"] = "\((now - said.since).components.seconds)"
            metadata["tries"] = "\(said.failures)"
        }
        logger.warning(message, metadata: metadata)
    }

    /// Listening again: the end of an outage is said once (nothing when there was none: every start).
    func listening() {
        let now = ContinuousClock.now
        guard
            let ended = outage.withLock({ outage in
                defer { outage = nil }; return outage
            })
        else { return }
        logger.notice(
            "key-change notifications are back; keys are cached again",
            metadata: [
                "outageSeconds": "\((now - ended.since).components.seconds)", "tries": "\(ended.failures)",
            ])
    }
}
