import Crypto
import Foundation
import KMSCore
import KMSProtocol
import KMSTestSupport
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import KMSPostgres

/// Issue 18: concurrent `accept_seq` calls of one instance share a statement
/// (`AcceptBatcher`); every caller still gets its own entry's answer, and the
/// database still decides each seq once, across instances.
@Suite(.shutsDownItsPools) struct AcceptBatchTests {
    /// Polls `condition` every 5 ms, for at most a minute (a loaded CI machine is slow, never this slow).
    static func until(_ condition: () -> Bool) async throws {
        let start = ContinuousClock.now
        while !condition(), ContinuousClock.now - start < .seconds(60) { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// Without a database: while the first statements are held, callers
    /// queue; they are carried by later statements, at most `maxStatements`
    /// at once, each answered with its own entry's result.
    @Test func queuedCallersShareStatementsAndGetTheirOwnAnswers() async throws {
        let seen = Mutex((running: 0, peak: 0, largest: 0))
        let gate = Mutex(false)
        let batcher = AcceptBatcher<Int, Int>(maxStatements: 2, maxBatch: 16, maxWait: .seconds(600)) { entries in
            seen.withLock { state in
                state.running += 1
                state.peak = max(state.peak, state.running)
                state.largest = max(state.largest, entries.count)
            }
            try? await Self.until { gate.withLock { $0 } }
            seen.withLock { $0.running -= 1 }
            return entries.map { $0 < 0 ? .failure(KMSError.replayDetected) : .success($0 * 2) }
        }
        let callers = Task {
            await withTaskGroup(of: (Int, Result<Int, KMSError>).self) { group in
                for value in -50..<150 {
                    group.addTask {
                        do throws(KMSError) {
                            return (value, .success(try await batcher.run(value)))
                        } catch {
                            return (value, .failure(error))
                        }
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
        }
        // Two statements run (held at the gate); everyone else queues behind them.
        try await Self.until { batcher.queuedCount == 198 }
        gate.withLock { $0 = true }
        let answers = await callers.value
        #expect(answers.count == 200)
        for (value, answer) in answers {
            switch answer {
            case .success(let doubled): #expect(value >= 0 && doubled == value * 2)
            case .failure(let error): #expect(value < 0 && error.code == .replayDetected)
            }
        }
        let (running, peak, largest) = seen.withLock { ($0.running, $0.peak, $0.largest) }
        #expect(running == 0 && peak <= 2 && largest == 16)
        // Quiet again: a lone caller runs its own statement at once.
        #expect(try await batcher.run(21) == 42)
    }

    /// Holds statements until released: how the queue tests fill a queue
    /// behind a running statement. Its statements echo their entries.
    final class Gate: Sendable {
        private let started = Mutex(false)
        private let open = Mutex(false)

        func hold(_ entries: [Int]) async -> [Result<Int, KMSError>] {
            started.withLock { $0 = true }
            try? await AcceptBatchTests.until { open.withLock { $0 } }
            return entries.map { .success($0) }
        }

        func waitUntilStarted() async throws { try await AcceptBatchTests.until { started.withLock { $0 } } }
        func release() { open.withLock { $0 = true } }
    }

    /// `batcher.run` on every value at once, in a task: each value's answer.
    static func runAll(_ values: ClosedRange<Int>, on batcher: AcceptBatcher<Int, Int>) -> Task<
        [Int: Result<Int, KMSError>], Never
    > {
        Task {
            await withTaskGroup(of: (Int, Result<Int, KMSError>).self) { group in
                for value in values {
                    group.addTask {
                        do throws(KMSError) { return (value, .success(try await batcher.run(value))) } catch {
                            return (value, .failure(error))
                        }
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
        }
    }

    /// A full queue answers at once, and a caller whose turn comes after the
    /// deadline is answered without running: `503` either way, never a hang.
    @Test func theQueueIsBoundedInLengthAndInTime() async throws {
        let gate = Gate()
        let batcher = AcceptBatcher<Int, Int>(maxStatements: 1, maxQueued: 2, maxWait: .milliseconds(50)) {
            await gate.hold($0)
        }
        let leader = Task { try await batcher.run(0) }
        try await gate.waitUntilStarted()
        let callers = Self.runAll(1...4, on: batcher)
        // Two queue, two find the queue full; the statement ends after the queued ones' deadline.
        try await Self.until { batcher.queuedCount == 2 }
        try await Task.sleep(for: .milliseconds(100))
        gate.release()
        #expect(try await leader.value == 0)
        let codes = await callers.value.values.map { answer -> String in
            switch answer {
            case .success: "ran"
            case .failure(let error): "\(error.code.rawValue): \(error.message)"
            }
        }
        #expect(codes.filter { $0.contains("server_busy: too many requests") }.count == 2, "\(codes)")
        #expect(codes.filter { $0.contains("server_busy: the database did not take") }.count == 2, "\(codes)")
    }

    /// One key (session) may hold only its share of the queue.
    @Test func oneSessionCannotFillTheQueue() async throws {
        let gate = Gate()
        // A long deadline: this is about the share of the queue, and on a loaded machine the
        // server's 6 s can pass before the held statement is released (seen in a CI run with both cores busy).
        let batcher = AcceptBatcher<Int, Int>(
            maxStatements: 1, maxQueued: 10, maxQueuedPerKey: 1, maxWait: .seconds(600), key: { $0 == 4 ? "b" : "a" }
        ) { await gate.hold($0) }
        let leader = Task { try await batcher.run(0) }
        try await gate.waitUntilStarted()
        let callers = Self.runAll(1...4, on: batcher)
        try await Self.until { batcher.queuedCount == 2 }
        gate.release()
        #expect(try await leader.value == 0)
        let ran = await callers.value.compactMapValues { try? $0.get() }
        #expect(ran[4] == 4, "the other session queued")
        #expect([1, 2, 3].filter { ran[$0] == $0 }.count == 1, "\(ran)")
    }

    static func store() async throws -> (PostgresSessionStore, PostgresSessionStore) {
        try await PostgresCacheTests.twoSessionStores()
    }

    /// Two instances' stores with a session for each of `ids` made now.
    static func storesWithSessions(_ ids: [String]) async throws -> (
        PostgresSessionStore, PostgresSessionStore, Date
    ) {
        let (store, other) = try await Self.store()
        let now = Date()
        for id in ids { try await store.createSession(Self.record(id, now: now), now: now, max: 10, perClient: .max) }
        return (store, other, now)
    }

    /// An `accept_seq` call for session `id` with `record(id, now:)`'s token.
    static func entry(_ id: String, _ seq: Int64, now: Date) -> PostgresSessionStore.AcceptEntry {
        .init(
            sessionId: id, tokenHash: ClientToken.hash("tok-\(id)").bytes, seq: seq, now: now, ttlMs: 900_000,
            sliding: true, deadline: .now + PostgresTestDatabase.callTimeout)
    }

    static func record(_ id: String, now: Date) -> SessionRecord {
        SessionRecord(
            id: id, tokenHash: ClientToken.hash("tok-\(id)"), key: SymmetricKey(size: .bits256), createdAt: now,
            expiresAt: now.addingTimeInterval(900), absoluteExpiry: now.addingTimeInterval(86_400))
    }

    /// Every seq sent four times at once, twice to each of two instances: each is
    /// accepted exactly once, however the calls were batched.
    @Test(.needsPostgres)
    func batchedSeqsAreAcceptedOnceAcrossInstances() async throws {
        let (first, second) = try await Self.store()
        let now = Date()
        try await first.createSession(Self.record("b1", now: now), now: now, max: 10, perClient: .max)
        let tokenHash = ClientToken.hash("tok-b1")
        let policy = SessionPolicy()
        let outcomes = await withTaskGroup(of: (UInt64, ErrorCode?).self) { group in
            for seq in UInt64(1)...30 {
                for store in [first, second, first, second] {
                    group.addTask {
                        do {
                            _ = try await store.acceptSequence(
                                sessionId: "b1", tokenHash: tokenHash, seq: seq, now: now, policy: policy)
                            return (seq, nil)
                        } catch {
                            return (seq, (error as? KMSError)?.code ?? .internalError)
                        }
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        // A loaded machine may answer some calls `server_busy` (one session's queue is bounded, and so is
        // the wait): never a second acceptance, and without a busy answer exactly one.
        for seq in UInt64(1)...30 {
            let forSeq = outcomes.filter { $0.0 == seq }
            let accepted = forSeq.filter { $0.1 == nil }.count
            let busy = forSeq.filter { $0.1 == .serverBusy }.count
            #expect(accepted == 1 || (accepted == 0 && busy > 0), "seq \(seq) accepted \(accepted) times")
            #expect(
                forSeq.allSatisfy { $0.1 == nil || $0.1 == .replayDetected || $0.1 == .serverBusy },
                "seq \(seq): \(forSeq.map { $0.1?.rawValue ?? "accepted" })")
        }
        #expect(outcomes.filter { $0.1 == nil }.count >= 20, "most seqs are accepted even on a loaded machine")
    }

    /// A batch the database refuses as a whole (here: text it cannot store)
    /// is run again entry by entry: only the bad entry fails.
    @Test(.needsPostgres)
    func aRefusedBatchFailsOnlyItsBadEntry() async throws {
        let (store, _) = try await Self.store()
        let now = Date()
        try await store.createSession(Self.record("b2", now: now), now: now, max: 10, perClient: .max)
        let token = ClientToken.hash("tok-b2").bytes
        func entry(_ id: String, _ seq: Int64) -> PostgresSessionStore.AcceptEntry {
            .init(
                sessionId: id, tokenHash: token, seq: seq, now: now, ttlMs: 900_000, sliding: true,
                deadline: .now + PostgresTestDatabase.callTimeout)
        }
        let entries = [entry("b2", 1), entry("b\u{0}2", 2), entry("b2", 3), entry("nobody", 4)]
        let answers = await PostgresSessionStore.accept(entries, database: store.database)
        // Refused as a whole and rolled back: every caller is told to run alone (4, outside the cap on
        // contended runs, so the innocent entries of a refused batch still succeed)...
        #expect(answers.map { (try? $0.get())?.0 } == [4, 4, 4, 4])
        // ...and alone, only the bad entry fails.
        var alone: [Result<PostgresSessionStore.AcceptRow?, KMSError>] = []
        for entry in entries { alone.append(await PostgresSessionStore.acceptAlone(entry, database: store.database)) }
        #expect((try? alone[0].get())?.0 == 0)
        #expect(throws: KMSError.self) { try alone[1].get() }
        #expect((try? alone[2].get())?.0 == 0)
        #expect((try? alone[3].get())?.0 == 1)
        // A batch the database takes: the same seqs again are replays, a new one is accepted, and a
        // seq twice in one batch is accepted once (each call sees the ones before it).
        let again = await PostgresSessionStore.accept(
            [entry("b2", 3), entry("b2", 6), entry("b2", 5), entry("b2", 1), entry("b2", 6)], database: store.database)
        #expect(again.map { (try? $0.get())?.0 } == [2, 0, 0, 2, 2])
    }

    /// A batch never waits for a row lock: a session whose row another
    /// transaction holds is answered 3 (contended) at once, the rest are
    /// decided, and the full path then runs the contended entry alone.
    @Test(.needsPostgres)
    func aLockedSessionDoesNotHoldTheBatchUp() async throws {
        let (store, other, now) = try await Self.storesWithSessions(["b3", "b4"])
        func entry(_ id: String, _ seq: Int64) -> PostgresSessionStore.AcceptEntry { Self.entry(id, seq, now: now) }
        let database = store.database
        let lock = await RowLock.hold("b3", in: other.database)
        // While the lock is held: answered at all, with b3 contended, means the batch did not wait for it.
        let batch = try await PostgresSessionStore.acceptBatch([entry("b3", 1), entry("b4", 1)], database: database)
            .get()
        #expect(batch?[0]?.0 == 3 && batch?[1]?.0 == 0)
        // Through `accept` too: b4 is decided at once, b3 is handed back to its caller...
        let answers = await PostgresSessionStore.accept([entry("b3", 2), entry("b4", 2)], database: database)
        #expect(answers.map { (try? $0.get())?.0 } == [3, 0])
        // ...whose call alone waits for the row, as a single call always did.
        let alone = Task {
            try await store.acceptSequence(
                sessionId: "b3", tokenHash: ClientToken.hash("tok-b3"), seq: 2, now: now, policy: SessionPolicy())
        }
        try await Task.sleep(for: .milliseconds(100))
        try await lock.release()
        #expect(try await alone.value > now)
    }

    /// A batch does not wait behind a run alone that waits for the row: the
    /// waiter holds PostgreSQL's tuple lock, and `SKIP LOCKED` skips it too.
    /// (A 2026-12-02 note said a batch waited here for 0.5 s; that was this
    /// test pool's two connections, both held by the lock and the run alone,
    /// so the batch waited for a connection. The lock is now held from the
    /// other instance, as in production.)
    @Test(.needsPostgres)
    func aBatchDoesNotWaitBehindAWaitingRunAlone() async throws {
        let (store, other, now) = try await Self.storesWithSessions(["b6", "b7"])
        func entry(_ id: String, _ seq: Int64) -> PostgresSessionStore.AcceptEntry { Self.entry(id, seq, now: now) }
        let lock = await RowLock.hold("b6", in: other.database)
        // The run alone's lock timeout (half the test stores' 30 s deadline) counts from here: under load,
        // seeing it wait can take seconds.
        let aloneStarted = ContinuousClock.now
        let alone = Task { await PostgresSessionStore.acceptAlone(entry("b6", 1), database: store.database) }
        // Until the run alone is queued on the row lock in the database.
        let start = ContinuousClock.now
        while try await RowLock.waitingForLocks(calling: "accept_seq(", in: other.database) == 0,
            ContinuousClock.now - start < .seconds(60)
        {
            try await Task.sleep(for: .milliseconds(5))
        }
        let started = ContinuousClock.now
        let batch = try await PostgresSessionStore.acceptBatch(
            [entry("b6", 2), entry("b7", 1)], database: store.database
        )
        .get()
        let took = ContinuousClock.now - started
        #expect(batch?[0]?.0 == 3 && batch?[1]?.0 == 0, "\(String(describing: batch))")
        // The lock is still held: a batch that waited would have failed at its lock timeout (15 s for the
        // test stores; 3 s in a server), not answered b6 contended. CI 147 saw a batch that did not wait
        // answer after 3.09 s on its loaded two cores, past this check's old 3 s.
        #expect(took < PostgresTestDatabase.callTimeout / 2, "\(took)")
        try await lock.release()
        // The run alone then gets the row, unless a very slow machine let its lock timeout pass first
        // (a run beside a release build took 89 s here, the wait above probably running out its 60 s, and
        // found no outcome although less than 2 s had passed since the batch).
        let aloneOutcome = try? await alone.value.get()
        if ContinuousClock.now - aloneStarted < .seconds(2) { #expect(aloneOutcome?.0 == 0) }
    }

    /// A review finding: each contended call runs alone on a pool connection of its own, waiting for the
    /// row, and replays through two instances made as many as the client liked, filling the pool. Past
    /// `maxAlone` at once they are answered `503` (retry), and never accepted twice.
    @Test(.needsPostgres)
    func contendedCallsAloneAreBounded() async throws {
        let (store, other) = try await Self.store()
        let now = Date()
        try await store.createSession(Self.record("b5", now: now), now: now, max: 10, perClient: .max)
        let lock = await RowLock.hold("b5", in: other.database)
        let calls = Task {
            await withTaskGroup(of: ErrorCode?.self) { group in
                for seq in UInt64(1)...10 {
                    group.addTask {
                        do {
                            _ = try await store.acceptSequence(
                                sessionId: "b5", tokenHash: ClientToken.hash("tok-b5"), seq: seq, now: now,
                                policy: SessionPolicy())
                            return nil
                        } catch {
                            return (error as? KMSError)?.code ?? .internalError
                        }
                    }
                }
                return await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
            }
        }
        // Released once a call runs alone (waiting for the row), however slowly a loaded machine starts them.
        try await Self.until { store.aloneHighWater.withLock { $0 } >= 1 }
        try await Task.sleep(for: .milliseconds(200))
        try await lock.release()
        let outcomes = await calls.value
        // Every call is accepted once or told to retry; how many ran alone depends on how the calls were
        // batched (and a batch may wait for one of this pool's two connections while runs alone hold
        // them), but never more than `maxAlone` at once.
        #expect(outcomes.allSatisfy { $0 == nil || $0 == .serverBusy }, "\(outcomes)")
        let highWater = store.aloneHighWater.withLock { $0 }
        #expect(highWater <= PostgresSessionStore.maxAlone, "\(highWater)")
    }
}

/// A session row held `FOR UPDATE` by a transaction of its own, as another
/// instance's statement would hold it, until `release`.
final class RowLock: Sendable {
    private let released = Mutex(false)
    private let holder = Mutex<Task<Void, any Error>?>(nil)

    static func hold(_ id: String, in database: KMSPostgres.PostgresDatabase) async -> RowLock {
        let lock = RowLock()
        let locked = AsyncStream<Void>.makeStream()
        let sessions = database.table("sessions")
        let task = Task {
            try await database.client.withTransaction(logger: database.logger) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "SELECT 1 FROM \(sessions) WHERE id = '\(id)' FOR UPDATE"),
                    logger: database.logger)
                locked.continuation.yield()
                try await AcceptBatchTests.until { lock.released.withLock { $0 } }
            }
        }
        lock.holder.withLock { $0 = task }
        for await _ in locked.stream { break }
        return lock
    }

    /// Backends waiting for a lock in a statement that calls this test's
    /// `function` (a name with its table prefix, so no other test's).
    static func waitingForLocks(calling function: String, in database: KMSPostgres.PostgresDatabase) async throws
        -> Int
    {
        var count = 0
        let pattern = "%" + database.table(function) + "%"
        for try await row in try await database.client.query(
            "SELECT count(*)::int8 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE \(pattern)",
            logger: database.logger
        ).decode(Int.self) {
            count = row
        }
        return count
    }

    func release() async throws {
        released.withLock { $0 = true }
        try await holder.withLock { $0 }?.value
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only with a database (`KMS_TEST_POSTGRES_URL`); says it skipped otherwise.
    fileprivate static var needsPostgres: Self {
        .enabled(
            if: PostgresTestDatabase.url != nil,
            "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL batch test is skipped")
    }
}
