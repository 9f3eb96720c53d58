import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where RSA-4096 unwraps run: on `width` threads of their own (by default
/// one per core), never on the event loops nor on the cooperative pool that
/// serves every other request, and at a lower scheduling priority (nice
/// `niceness`, 10 by default) than everything else in the process.
///
/// Both goals of issue 18 come from that one executor: with the server
/// otherwise idle the unwraps use every core (key exchanges at the rate of
/// the cores' RSA), while under a key-exchange flood the kernel gives the
/// sealed calls' threads the CPU first (a nice-10 thread gets about a tenth of
/// a core a nice-0 thread wants), so the flood cannot starve them. Past
/// `backlog` waiting unwraps the next is refused (`503`) instead of queued.
public final class RSAWorkQueue: Sendable {
    /// The threads' queue; shared with the threads, which stop when the owner goes.
    private final class Workers: Sendable {
        private let jobs = Mutex<(pending: [@Sendable () -> Void], stopped: Bool)>(([], false))
        private let wake = DispatchSemaphore(value: 0)

        func submit(_ job: @escaping @Sendable () -> Void) {
            jobs.withLock { $0.pending.append(job) }
            wake.signal()
        }

        func stop(threads: Int) {
            jobs.withLock { $0.stopped = true }
            for _ in 0..<threads { wake.signal() }
        }

        func work(niceness: Int32) {
            // On Linux the nice value is per thread: `who` 0 is the calling thread.
            #if os(Linux)
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
            #endif
            while true {
                wake.wait()
                let (job, stopped) = jobs.withLock { state in
                    (state.pending.isEmpty ? nil : state.pending.removeFirst(), state.stopped)
                }
                if let job {
                    job()
                } else if stopped {
                    return
                }
            }
        }
    }

    private let workers = Workers()
    fileprivate let waiting = Atomic<Int>(0)
    public let width: Int
    public let backlog: Int
    public let niceness: Int32
    /// Unwraps run so far (tests count them).
    public let completed = Atomic<Int>(0)

    /// Whether any unwrap is waiting or running: the per-address rate limit
    /// only refuses while the RSA threads are contended.
    public var isBusy: Bool { waiting.load(ordering: .relaxed) > 0 }

    public init(
        width: Int = ProcessInfo.processInfo.activeProcessorCount, backlog: Int = 64, niceness: Int32 = 10
    ) {
        self.width = max(1, width)
        self.backlog = max(1, backlog)
        self.niceness = niceness
        for index in 0..<self.width {
            let thread = Thread { [workers] in workers.work(niceness: niceness) }
            thread.name = "kms.rsa.\(index)"
            thread.start()
        }
    }

    deinit {
        workers.stop(threads: width)
    }

    /// A place in the backlog, taken before anything is used up (the pending
    /// session of a key exchange), so that a `503` leaves the client able to
    /// retry. Given back when it is used or released.
    public final class Reservation: Sendable {
        let queue: RSAWorkQueue
        private let held = Atomic<Bool>(true)

        init(queue: RSAWorkQueue) { self.queue = queue }

        /// Gives the place back (also done when the reservation is dropped).
        public func release() {
            if held.exchange(false, ordering: .relaxed) { queue.waiting.wrappingSubtract(1, ordering: .relaxed) }
        }

        deinit { release() }
    }

    /// Takes a place in the backlog; `503 server_busy` when too many wait.
    public func reserve() throws(KMSError) -> Reservation {
        guard waiting.wrappingAdd(1, ordering: .relaxed).newValue <= backlog else {
            waiting.wrappingSubtract(1, ordering: .relaxed)
            throw KMSError(
                .serverBusy, "too many key exchanges are waiting for the server's RSA key; try again shortly",
                retryAfterSeconds: 1)
        }
        return Reservation(queue: self)
    }

    /// Runs `work` on the RSA threads in a reserved place.
    public func run<T: Sendable>(
        _ reservation: Reservation, _ work: @escaping @Sendable () throws(KMSError) -> T
    ) async throws(KMSError) -> T {
        let result: Result<T, KMSError> = await withCheckedContinuation { continuation in
            workers.submit { continuation.resume(returning: Result { () throws(KMSError) in try work() }) }
        }
        reservation.release()
        completed.wrappingAdd(1, ordering: .relaxed)
        return try result.get()
    }

    /// `reserve` and `run` in one.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws(KMSError) -> T) async throws(KMSError) -> T {
        try await run(try reserve(), work)
    }
}

/// Key exchanges per client address: a token bucket of `burst`, refilled at
/// `perSecond`, charged for every exchange. An empty bucket refuses
/// (`429 rate_limited` with `Retry-After`, before any store or RSA work) only
/// while the RSA threads are busy: a flood competes with other clients'
/// exchanges and is cut, while a fast client alone on an idle server (a test
/// suite, a restore job opening many sessions) is never refused for speed.
/// Memory is bounded: past `maxAddresses`, idle addresses are forgotten, and
/// while none is idle a new address is judged on an empty bucket.
public final class KeyExchangeLimiter: Sendable {
    public let perSecond: Double
    public let burst: Double
    /// How many addresses are remembered at once.
    public static let maxAddresses = 10_000

    private struct State {
        var buckets: [String: (tokens: Double, at: Date)] = [:]
        /// When the table is full, the earliest moment a remembered address
        /// can have become idle: no sweep before it (a sweep is a pass over
        /// every address, and a stream of newcomers must not pay one each).
        var nextSweep = Date.distantPast
        /// How many sweeps ran (tests).
        var sweeps = 0
    }
    private let state = Mutex(State())

    /// How many times the table was swept for idle addresses.
    var sweeps: Int { state.withLock { $0.sweeps } }

    public init(perSecond: Int, burst: Int? = nil) {
        self.perSecond = Double(max(1, perSecond))
        self.burst = Double(max(1, burst ?? perSecond * 2))
    }

    /// Charges `address` one exchange; throws `rate_limited` when its bucket
    /// is empty and `contended` (the RSA queue has work waiting or running).
    public func admit(_ address: String, now: Date, contended: Bool) throws(KMSError) {
        let retryAfter: Int? = state.withLock { state in
            let refill = burst / perSecond
            if state.buckets.count >= Self.maxAddresses, state.buckets[address] == nil,
                now >= state.nextSweep || state.nextSweep.timeIntervalSince(now) > refill
            {
                // Forget only addresses whose bucket has refilled (idle ones): many
                // addresses must not wipe a flooding address's empty bucket. The second
                // condition sweeps after the clock was set back.
                state.buckets = state.buckets.filter { now.timeIntervalSince($0.value.at) < refill }
                state.nextSweep = (state.buckets.values.map(\.at).min() ?? now).addingTimeInterval(refill)
                state.sweeps += 1
            }
            // Past the bound with no idle address to forget, a newcomer is judged
            // on an empty bucket and not remembered.
            let remember = state.buckets[address] != nil || state.buckets.count < Self.maxAddresses
            var bucket = state.buckets[address] ?? (remember ? burst : 0, now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now.timeIntervalSince(bucket.at)) * perSecond)
            bucket.at = now
            defer { if remember { state.buckets[address] = bucket } }
            guard bucket.tokens >= 1 else {
                guard contended else { return nil }
                return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
            }
            bucket.tokens -= 1
            return nil
        }
        if let retryAfter {
            throw KMSError(
                .rateLimited,
                "too many key exchanges from this address (KMS_KEY_EXCHANGE_RATE per second) while the server is busy; retry after \(retryAfter) s",
                retryAfterSeconds: retryAfter)
        }
    }
}
