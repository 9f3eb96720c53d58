import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `kms serve`'s service group: the application and `SystemdStoppingService`,
/// run until one of `signals` asks for a graceful shutdown, whose drain is
/// bounded by `maximumDrain`. Past the bound the group is cancelled
/// (`AuditFlusher` still signs and closes the audit log; every service must
/// end when cancelled), and that is said at warning level: swift-service-lifecycle's own bound says it only at
/// debug, and the error its cancellation ends with (`CancellationError()`)
/// was printed and made `kms serve` exit 1 (a review).
///
/// The bound is this type's own timer, started when graceful shutdown
/// reaches `SystemdStoppingService`, not the library's: which of the two
/// ended the drain is then known, not guessed from elapsed time (a review:
/// the library's timer starts a moment before the service hears of the
/// shutdown, so an elapsed-time check could miss a cut).
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
        group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [app, stopping], gracefulShutdownSignals: signals, logger: logger))
        self.maximumDrain = maximumDrain
        self.logger = logger
    }

    /// Thrown by the drain's timer, inside `run` only.
    private struct DrainCut: Error {}

    /// Returns once the group ended. A drain cut at its bound ends as a stop does (`kms serve` exits 0) when
    /// what the group then ends with is the cut's cancellation; any other error is rethrown, its type named
    /// in the warning (a review: a real failure must not be hidden behind the cut).
    func run() async throws {
        let (group, began, bound) = (self.group, stopping.began, maximumDrain)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                try await began.wait()
                try await Task.sleep(for: bound)
                throw DrainCut()
            }
            do {
                // The group ended first (a drain within its bound, or a failure): the timer is not needed.
                try await tasks.next()
                tasks.cancelAll()
                return
            } catch is DrainCut {
                // Said now, not once the group ended: a service slow to end when cancelled (a hung disk under
                // the audit log) could otherwise meet systemd's SIGKILL before the line was written (a review).
                logger.warning(
                    "the shutdown's drain reached its bound: requests still open and background work are cancelled",
                    metadata: ["boundSeconds": "\(maximumDrain.components.seconds)"])
                tasks.cancelAll()  // cancels the group: every service still running ends by cancellation
            }
            do {
                try await tasks.next()
            } catch is CancellationError {
                // The cut itself.
            } catch {
                logger.error(
                    "the shutdown ended with an error after its drain was cut",
                    metadata: ["error": "\(type(of: error))"])
                throw error
            }
        }
    }
}

/// When a graceful shutdown began; set once, by `SystemdStoppingService`, and awaited by `ServeGroup`'s
/// drain timer.
final class DrainStart: Sendable {
    private struct State {
        var instant: ContinuousClock.Instant?
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var nextWaiter = 0
    }
    private let state = Mutex(State())

    func mark() {
        let waiters = state.withLock { state in
            if state.instant == nil { state.instant = .now }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once `mark()` ran; throws `CancellationError` when the waiting task is cancelled first.
    func wait() async throws {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Result<Void, any Error>? = state.withLock { state in
                    if state.instant != nil { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}
