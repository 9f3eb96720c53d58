import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `kms serve`'s service group: the application and `SystemdStoppingService`,
/// run until one of `signals` asks for a graceful shutdown, whose drain is
/// bounded by `maximumDrain`. Past the bound the group is cancelled
/// (`AuditFlusher` still signs and closes the audit log), and that is said
/// at warning level: swift-service-lifecycle says it only at debug, so an
/// operator whose uploads were cut off at shutdown was not told why (a review).
struct ServeGroup {
    let group: ServiceGroup
    let maximumDrain: Duration
    private let stopping: SystemdStoppingService
    private let logger: Logger

    init(
        _ app: any Service, signals: [UnixSignal], maximumDrain: Duration, notifier: SystemdNotifier,
        logger: Logger
    ) {
        // After the application, so that graceful shutdown (last service first) reaches it first: `STOPPING=1`
        // goes out before the drain, not after it.
        stopping = SystemdStoppingService(notifier: notifier)
        var configuration = ServiceGroupConfiguration(
            services: [app, stopping], gracefulShutdownSignals: signals, logger: logger)
        configuration.maximumGracefulShutdownDuration = maximumDrain
        group = ServiceGroup(configuration: configuration)
        self.maximumDrain = maximumDrain
        self.logger = logger
    }

    /// Returns once the group ended. A drain cut at its bound ends as a stop does (`kms serve` exits 0):
    /// the services then end by cancellation, and its error (`CancellationError()`, what the command
    /// printed) is the cut the warning names, not a failure of the server.
    func run() async throws {
        do {
            try await group.run()
        } catch {
            guard reachedBound() else { throw error }
            return
        }
        _ = reachedBound()
    }

    /// Whether the drain reached its bound; said once, when it did.
    private func reachedBound() -> Bool {
        guard let began = stopping.began.instant, ContinuousClock.now - began >= maximumDrain else { return false }
        logger.warning(
            "the shutdown's drain reached its bound: requests still open and background work were cancelled, and the audit log was closed",
            metadata: ["boundSeconds": "\(maximumDrain.components.seconds)"])
        return true
    }
}

/// When a graceful shutdown began; set once, by `SystemdStoppingService`.
final class DrainStart: Sendable {
    private let value = Mutex<ContinuousClock.Instant?>(nil)

    var instant: ContinuousClock.Instant? { value.withLock { $0 } }

    func mark() { value.withLock { $0 = $0 ?? .now } }
}
