import Foundation
import KMSCore
import Synchronization

/// Runs concurrent `accept_seq` calls of this instance as one statement
/// (issue 18: "the replay update batched across concurrent requests").
///
/// At most `maxStatements` statements are in flight. A caller that finds
/// room runs its own statement at once (no hop, no added latency when the
/// server is quiet), taking along whatever queued meanwhile; a caller that
/// finds none queues, and the next statement to finish carries it. Under load
/// the per-statement cost of the driver (a task hand-off to the event loop and
/// back, encoding, row decoding) is paid once per batch instead of once per
/// request.
///
/// What the database decides is unchanged (`PostgresSessionStore.accept`
/// runs the statement; docs/postgres.md): this type only decides who shares
/// a statement, bounds the queue (in all, per session, and in time), and
/// answers each caller with its own entry's outcome.
final class AcceptBatcher<Entry: Sendable, Answer: Sendable>: Sendable {
    typealias Outcome = Result<Answer, KMSError>

    private struct Waiter: Sendable {
        let entry: Entry
        let key: String
        let continuation: CheckedContinuation<Outcome, Never>
        let queued = ContinuousClock.now
    }

    private struct State {
        var queued: [Waiter] = []
        /// Queued waiters per key (session), so one session cannot fill the queue.
        var queuedPerKey: [String: Int] = [:]
        /// Statements in flight (callers running their own, and drains).
        var running = 0

        mutating func removeFirst(_ count: Int) -> [Waiter] {
            let taken = Array(queued.prefix(count))
            queued.removeFirst(taken.count)
            for waiter in taken {
                let left = (queuedPerKey[waiter.key] ?? 1) - 1
                queuedPerKey[waiter.key] = left > 0 ? left : nil
            }
            return taken
        }
    }

    private let state = Mutex(State())
    private let maxStatements: Int
    private let maxBatch: Int
    /// Callers that may queue; beyond it a caller is answered `503` at once.
    private let maxQueued: Int
    /// Callers of one key (session) that may queue: a client flooding its own
    /// session fills its own share, not the lane's whole queue.
    private let maxQueuedPerKey: Int
    private let keyOf: @Sendable (Entry) -> String
    /// How long a caller may queue: one whose turn comes later is answered
    /// `503` without running, so that a statement never gets less than the
    /// per-call deadline minus this to run. No default: it is derived from
    /// the database's deadline (`PostgresDatabase.acceptQueueBudget`).
    private let maxWait: Duration
    /// One statement for all `entries`: an outcome per entry, in order.
    private let runBatch: @Sendable ([Entry]) async -> [Outcome]

    init(
        maxStatements: Int, maxBatch: Int = 64, maxQueued: Int = 1_024, maxQueuedPerKey: Int = .max,
        maxWait: Duration, key: @escaping @Sendable (Entry) -> String = { _ in "" },
        runBatch: @escaping @Sendable ([Entry]) async -> [Outcome]
    ) {
        self.maxStatements = max(1, maxStatements)
        self.maxBatch = max(1, maxBatch)
        self.maxQueued = max(0, maxQueued)
        self.maxQueuedPerKey = max(0, maxQueuedPerKey)
        keyOf = key
        self.maxWait = maxWait
        self.runBatch = runBatch
    }

    /// A busy server, not an outage: no detail, so a client flooding its own
    /// session does not fill the error log (a statement that fails still logs).
    static var queueFull: KMSError {
        KMSError(.serverBusy, "too many requests are waiting for the database; try again shortly", retryAfterSeconds: 1)
    }

    static var waitedTooLong: KMSError {
        KMSError(.serverBusy, "the database did not take this request in time; try again shortly", retryAfterSeconds: 1)
    }

    /// Callers waiting for a statement (tests watch it).
    var queuedCount: Int { state.withLock { $0.queued.count } }

    func run(_ entry: Entry) async throws(KMSError) -> Answer {
        let leads = state.withLock { state -> Bool in
            guard state.running < maxStatements else { return false }
            state.running += 1
            return true
        }
        if leads {
            let others = takeBatch(limit: maxBatch - 1, releasingSlotIfNone: false)
            let entries = [entry] + others.map(\.entry)
            let runBatch = self.runBatch
            // Carrying others, the statement runs in a task of its own: cancelling this caller's
            // request must not cancel theirs. Alone, it runs here, without a hop.
            let outcomes = others.isEmpty ? await runBatch(entries) : await Task { await runBatch(entries) }.value
            answer(others, with: outcomes.dropFirst())
            finishStatement()
            return try outcome(outcomes.first).get()
        }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let key = keyOf(entry)
            let (admitted, drains) = state.withLock { state -> (Bool, Bool) in
                guard state.queued.count < maxQueued, state.queuedPerKey[key, default: 0] < maxQueuedPerKey else {
                    return (false, false)
                }
                state.queued.append(Waiter(entry: entry, key: key, continuation: continuation))
                state.queuedPerKey[key, default: 0] += 1
                // A statement may have finished since the check above.
                guard state.running < maxStatements else { return (true, false) }
                state.running += 1
                return (true, true)
            }
            if !admitted { continuation.resume(returning: .failure(Self.queueFull)) }
            if drains { Task { await self.drain() } }
        }
        return try result.get()
    }

    /// Runs queued entries until none are left, then gives up its slot.
    private func drain() async {
        while true {
            let batch = takeBatch(limit: maxBatch, releasingSlotIfNone: true)
            if batch.isEmpty { return }
            answer(batch, with: (await runBatch(batch.map(\.entry)))[...])
        }
    }

    /// Up to `limit` queued waiters; when there are none and the caller is a
    /// drain, its slot is given up in the same lock (so nothing queued is missed).
    private func takeBatch(limit: Int, releasingSlotIfNone: Bool) -> [Waiter] {
        let oldest = ContinuousClock.now - maxWait
        let (batch, late) = state.withLock { state in
            // Callers that queued past the deadline are answered, not run.
            let late = state.removeFirst(state.queued.prefix { $0.queued < oldest }.count)
            let batch = state.removeFirst(limit)
            if batch.isEmpty, releasingSlotIfNone { state.running -= 1 }
            return (batch, late)
        }
        for waiter in late { waiter.continuation.resume(returning: .failure(Self.waitedTooLong)) }
        return batch
    }

    /// After a caller's own statement: hands what queued meanwhile to a drain.
    private func finishStatement() {
        let drains = state.withLock { state -> Bool in
            if state.queued.isEmpty {
                state.running -= 1
                return false
            }
            return true
        }
        if drains { Task { await self.drain() } }
    }

    private func answer(_ waiters: [Waiter], with outcomes: ArraySlice<Outcome>) {
        for (offset, waiter) in waiters.enumerated() {
            waiter.continuation.resume(returning: outcome(outcomes.dropFirst(offset).first))
        }
    }

    private func outcome(_ outcome: Outcome?) -> Outcome {
        outcome ?? .failure(KMSError.storageUnavailable("PostgreSQL accept seq: a batch answered too few rows"))
    }
}
