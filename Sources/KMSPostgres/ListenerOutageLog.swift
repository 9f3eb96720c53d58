import Logging
import Synchronization

/// What the key-change listener says about an outage of its connection. It tries again every second, and
/// it warned at every try: a database down for an hour wrote 3,600 identical warnings into the operator's
/// log (an operator's walkthrough), and nothing said when the notifications came back. Now: the first failure
/// at warning; then one warning every `repeatEvery` while it lasts, with how long and how many tries, the
/// others at debug; and one line at notice when the listener is back after a warning. A connection that comes
/// back and is lost again within `repeatEvery` (a proxy that cuts connections at an age) continues the same
/// outage rather than starting a new one, so flapping costs at most a warning and a notice per interval (a
/// review: each cycle logged both).
final class ListenerOutageLog: Sendable {
    private struct Outage {
        let since: ContinuousClock.Instant
        var lastWarned: ContinuousClock.Instant
        var failures: Int
        /// When the listener came back, while it holds.
        var backAt: ContinuousClock.Instant?
        /// Whether the notice was said since the last warning.
        var saidBack = false
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
        let (warn, said): (Bool, Outage) = outage.withLock { outage in
            guard var current = outage, current.backAt.map({ now - $0 < repeatEvery }) ?? true else {
                let new = Outage(since: now, lastWarned: now, failures: 1)
                outage = new
                return (true, new)
            }
            current.failures += 1
            current.backAt = nil
            let warn = now - current.lastWarned >= repeatEvery
            if warn {
                current.lastWarned = now
                current.saidBack = false
            }
            outage = current
            return (warn, current)
        }
        var metadata: Logger.Metadata = ["detail": "\(detail)"]
        guard warn else { return logger.debug(message, metadata: metadata) }
        if said.failures > 1 {
            metadata["outageSeconds"] = "\((now - said.since).components.seconds)"
            metadata["tries"] = "\(said.failures)"
        }
        logger.warning(message, metadata: metadata)
    }

    /// Listening again: the end of an outage is said once after each warning (nothing when there was none:
    /// every start).
    func listening() {
        let now = ContinuousClock.now
        let ended: Outage? = outage.withLock { outage in
            guard var current = outage else { return nil }
            current.backAt = now
            defer { outage = current }
            guard !current.saidBack else { return nil }
            current.saidBack = true
            return current
        }
        guard let ended else { return }
        logger.notice(
            "key-change notifications are back; keys are cached again",
            metadata: [
                "outageSeconds": "\((now - ended.since).components.seconds)", "tries": "\(ended.failures)",
            ])
    }
}
