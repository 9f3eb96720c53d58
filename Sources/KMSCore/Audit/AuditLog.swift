import Crypto
public import Foundation
public import Logging
import Synchronization

/// The tamper-evident audit log: a hash chain of JSON lines with signed
/// checkpoints (format 2, `AuditChain`).
///
/// Writes run one at a time on a serial queue, off Swift's cooperative
/// threads. `record` fails closed — `503 audit_unavailable` — when the entry
/// cannot be written, and also when the disk does not answer within
/// `timeout`, so a stuck disk refuses operations instead of hanging them;
/// requests that need no audit entry are never held up. A failed write is cut
/// back off the file, the chain does not advance, and the next entry simply
/// tries again: recording resumes by itself once the disk works.
///
/// Durability and signing go together: a batch holding an entry with
/// `durable: true` (key-changing operations) ends with a signed checkpoint and
/// is fsynced before `record` returns; other entries are written before it
/// returns, and the next durable batch or a flush within a second signs a
/// checkpoint over them and fsyncs. One Ed25519 signature per group commit, not
/// per entry, is what keeps a sealed call's audit cost to a hash (issue 18).
public final class AuditLog: Sendable {
    /// A caller waiting for its entry; resumed once, by the writer or by the watchdog.
    private final class Waiter: Sendable {
        /// One entry, or start-up's entries that must share one write.
        let events: [AuditEvent]
        let durable: Bool
        /// When the watchdog answers 503 if the writer has not answered yet.
        let deadline: ContinuousClock.Instant
        private let continuation: Mutex<CheckedContinuation<Result<Void, KMSError>, Never>?>

        init(
            events: [AuditEvent], durable: Bool, wait: Duration,
            continuation: CheckedContinuation<Result<Void, KMSError>, Never>
        ) {
            self.events = events
            self.durable = durable
            deadline = .now + wait
            self.continuation = Mutex(continuation)
        }

        var isAnswered: Bool { continuation.withLock { $0 == nil } }

        func answer(_ result: Result<Void, KMSError>) {
            continuation.withLock { $0.take() }?.resume(returning: result)
        }
    }

    private struct State: @unchecked Sendable {
        var seq: UInt64
        var prev: String
        /// File size after the last complete entry.
        var goodSize: Int
        /// The last seq a signed checkpoint (or a format-1 signature) covers.
        /// Everything up to it is also fsynced (a checkpoint is written with an
        /// fsync, or just before a rotation's), so `seq > signedSeq` is also
        /// "something waits for its fsync".
        var signedSeq: UInt64
        /// When the oldest entry no checkpoint covers yet was written: a batch
        /// checkpoints once it is `checkpointInterval` old, even while the
        /// writer never idles long enough for the timed flush to run.
        var unsignedSince: ContinuousClock.Instant?
        var flushScheduled = false
        /// Entries waiting for the writer; it takes them all at once (group commit).
        var pending: [Waiter] = []
        /// The batch being written now (the watchdog answers it if the disk hangs).
        var inFlight: [Waiter] = []
        var draining = false
        /// Batches refused in a row since the last one written: the failure is logged when it starts and
        /// when it ends, with this count, not once a batch (a review filled a disk and got 525 lines).
        var failedBatches = 0
        /// The watchdog answered waiters of a hung disk since the last batch written: logged once.
        var expiring = false
        /// Set by `close()`: every later batch is signed and fsynced at once,
        /// since no timed flush may come before the process exits.
        var closing = false
        /// The current file's size at its last successful fsync, and the bytes
        /// written after it (at most about a checkpoint interval of entries).
        var syncedSize: Int
        var unsynced = Data()
        /// A write or fsync failed since the last successful fsync. Linux may
        /// then have dropped dirty pages that a later fsync reports as written
        /// ("fsyncgate"), so the next batch first writes `unsynced` again from
        /// memory, and then signs and fsyncs.
        var rewriteUnsynced = false
        /// Entries on disk at start that no signature covers (a crash's tail):
        /// until a batch of this process checkpoints (the start's, which marks
        /// them first), no rotation may sign them with its own checkpoint.
        var crashTailUnmarked: Bool
    }

    private let writer: any AuditFileWriter
    private let key: Curve25519.Signing.PrivateKey
    private let clock: any KMSClock
    private let maxBytes: Int
    private let timeout: Duration
    private let checkpointInterval: Duration
    private let logger: Logger
    private let queue = DispatchQueue(label: "kms.audit")
    private let state: Mutex<State>
    private let watchdog: Watchdog
    /// Keeps other processes from writing the same log while this one lives.
    private let writerLock: AuditWriterLock?

    /// The timer, boxed: `DispatchSource` is documented thread-safe for
    /// `cancel`, which is all that happens to it after `init`.
    private final class Watchdog: @unchecked Sendable {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "kms.audit.watchdog"))
    }

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    /// Whether the log is refusing entries now (its last batch failed, or the disk did not answer in time):
    /// what `/metrics` reports as `kms_audit_log_writable`, since `/healthz` answers while the server runs.
    public var isFailing: Bool { state.withLock { $0.failedBatches > 0 || $0.expiring } }

    /// Continues the chain after (`seq`, `prev`): the last line already on
    /// disk, of which entries up to `signedThrough` (default: all) are covered
    /// by a signature. `checkpointInterval` bounds how long an entry waits for
    /// its signature and fsync when no durable entry comes (tests lengthen it).
    /// `keptBytes` (`AuditFiles.Resume.keptBytes`) is where the file's whole
    /// lines end: anything after it, a torn line, is cut by the first write.
    public init(
        writer: any AuditFileWriter, key: Curve25519.Signing.PrivateKey, after seq: UInt64, prev: String,
        signedThrough: UInt64? = nil, keptBytes: Int? = nil, clock: any KMSClock, maxBytes: Int,
        timeout: Duration = .seconds(2),
        checkpointInterval: Duration = .seconds(1), writerLock: AuditWriterLock? = nil, logger: Logger
    ) throws {
        self.writerLock = writerLock
        self.writer = writer
        self.key = key
        self.clock = clock
        self.maxBytes = maxBytes
        self.timeout = timeout
        self.checkpointInterval = checkpointInterval
        self.logger = logger
        let goodSize = min(keptBytes ?? .max, try writer.size())
        state = Mutex(
            State(
                seq: seq, prev: prev, goodSize: goodSize, signedSeq: min(signedThrough ?? seq, seq),
                unsignedSince: (signedThrough ?? seq) < seq ? .now : nil, syncedSize: goodSize,
                crashTailUnmarked: (signedThrough ?? seq) < seq))
        watchdog = Watchdog()
        watchdog.timer.schedule(deadline: .now() + .milliseconds(50), repeating: .milliseconds(50))
        watchdog.timer.setEventHandler { [weak self] in self?.expireWaiters() }
        watchdog.timer.resume()
    }

    deinit {
        watchdog.timer.cancel()
    }

    /// Opens the log at `url`, continuing its chain: entries a crash left
    /// without a checkpoint are recorded (`audit.unsigned-tail`), and a
    /// half-written last line is cut off and recorded (`audit.repaired`), so
    /// `kms audit verify` can say that they are not tamper-evident. Both
    /// entries go in one durable write, whose checkpoint is the first to sign
    /// over the tail and which is the one that cuts the torn line, after the
    /// log's key was checked. It waits `startupWait` (see `record(_:durable:wait:)`).
    ///
    /// `writerLock` (taken before anything touches the log or its folder) is
    /// kept as long as the log lives.
    ///
    /// `newLogReason`, given when the store's audit key existed before this
    /// open: a log with no entry at all then begins with `audit.new-log` and
    /// that reason, said at `newLogLevel` too. Every writer that can begin a
    /// log (`kms serve`, the verbs run beside a stopped server) goes through
    /// here, so none begins a wiped log unmarked (a review found the local
    /// verbs did).
    public static func open(
        at url: URL, key: Curve25519.Signing.PrivateKey, clock: any KMSClock, maxBytes: Int,
        timeout: Duration = .seconds(2), writerLock: AuditWriterLock? = nil, newLogReason: String? = nil,
        newLogLevel: Logger.Level = .warning, logger: Logger
    ) async throws -> AuditLog {
        let resume = try AuditFiles.resume(url)
        // A log signed under another key (a store that is not the log's, a restore that replaced the
        // key): its next checkpoint would be signed by this key, and every entry before it would no
        // longer verify, silently. Refused, as a store without any key is (`AuditFiles.loadOrCreateKey`).
        if let signed = resume.lastSigned, !AuditChain.verifySignature(signed, publicKey: key.publicKey) {
            throw KMSError.internal(
                "the audit log \(url.path) does not verify with the store's audit key (another key signed it, or it was altered): point the server at the store that holds the log's key, or move the log's files aside to begin a new log (docs/audit.md); kms audit verify says more"
            )
        }
        let log = try AuditLog(
            writer: try AuditFile(url: url), key: key, after: resume.seq, prev: resume.prev,
            signedThrough: resume.signedSeq, keptBytes: resume.keptBytes, clock: clock, maxBytes: maxBytes,
            timeout: timeout, writerLock: writerLock, logger: logger)
        // One write, the tail's marker first: written after `audit.repaired`'s checkpoint, a failure
        // between the two left the tail signed and unmarked, and the next start found nothing unsigned (a
        // review reproduced it with a full disk). The torn line is cut just before this write; were the
        // write to fail, the cut stays without its record (docs/audit.md).
        var events: [AuditEvent] = []
        // No whole entry, whatever torn bytes are cut below: a log wiped down to a byte is a new log too
        // (an audit probe left `{`, and the start recorded only a crash's repair).
        if let newLogReason, resume.seq == 0 {
            logger.log(
                level: newLogLevel, "the audit log is empty or missing: a new chain begins at seq 1",
                metadata: ["file": "\(url.path)", "event": "\(AuditEvent.newLog)", "reason": "\(newLogReason)"])
            events.append(AuditEvent.beginningNewLog(file: url, reason: newLogReason))
        }
        if resume.signedSeq < resume.seq {
            events.append(
                AuditEvent(
                    "audit.unsigned-tail", [("fromSeq", "\(resume.signedSeq + 1)"), ("toSeq", "\(resume.seq)")]))
        }
        if resume.repairedBytes > 0 {
            logger.warning(
                "cutting a half-written last line off the audit log",
                metadata: ["bytes": "\(resume.repairedBytes)", "file": "\(url.path)"])
            events.append(AuditEvent(AuditEvent.repaired, [("truncatedBytes", "\(resume.repairedBytes)")]))
        }
        if !events.isEmpty { try await log.record(events, durable: true, wait: max(timeout, startupWait)) }
        return log
    }

    /// How long start-up's own entries may wait for the disk. A request's
    /// client is waiting, so it gets the short `timeout`; start-up has no
    /// client, and the first fsync of a cold or busy disk can take seconds
    /// (CI under full load: more than 2 s), which must not stop the server.
    /// A disk that *fails* still stops start-up at once: only waiting is longer.
    public static let startupWait: Duration = .seconds(30)

    /// Writes `event`; throws `audit_unavailable` (503) if it cannot within
    /// `wait` (default: the log's timeout). A waiter given up on may still be
    /// written afterwards, once: it is never retried, so a longer wait, not a
    /// retry, is how a caller tolerates a slow disk.
    public func record(_ event: AuditEvent, durable: Bool, wait: Duration? = nil) async throws(KMSError) {
        try await record([event], durable: durable, wait: wait)
    }

    /// Writes `events` in one batch: together, in this order, or none of them.
    public func record(_ events: [AuditEvent], durable: Bool, wait: Duration?) async throws(KMSError) {
        let result: Result<Void, KMSError> = await withCheckedContinuation { continuation in
            let waiter = Waiter(events: events, durable: durable, wait: wait ?? timeout, continuation: continuation)
            let start = state.withLock { state -> Bool in
                state.pending.append(waiter)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if start { queue.async { self.drain() } }
        }
        try result.get()
    }

    /// Writes `event` if it can; a failure is logged, never thrown (for events
    /// whose operation has already happened and cannot be refused).
    /// While the log is failing (its start already logged), a lost entry is not a line of its own: a
    /// loop of `/crypto/random` on a full disk wrote one per request (the final review).
    public func recordBestEffort(_ event: AuditEvent) async {
        do {
            try await record(event, durable: false)
        } catch {
            if state.withLock({ $0.failedBatches == 0 && !$0.expiring }) {
                logger.error("could not write an audit entry", metadata: ["event": "\(event.type)"])
            }
        }
    }

    /// Signs and fsyncs what was written, and from then on signs and fsyncs
    /// every batch as it is written (graceful shutdown). Entries that other
    /// tasks still write after the final flush (a session event, a refusal)
    /// would otherwise wait for a timed checkpoint the exiting process never
    /// makes, and the next start would report them as an unsigned tail left
    /// by a crash after a clean stop.
    public func close() async {
        state.withLock { $0.closing = true }
        await flush()
    }

    /// Signs and fsyncs what was written.
    public func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.syncIfNeeded()
                continuation.resume()
            }
        }
    }

    static let unavailable = KMSError(
        .auditUnavailable, "the audit log cannot be written, so audited operations are refused; retry later",
        retryAfterSeconds: 5)

    /// Answers 503 to every waiter past its deadline (a disk that hangs).
    private func expireWaiters() {
        let now = ContinuousClock.now
        let expired = state.withLock { state in
            let expired = (state.pending + state.inFlight).filter { $0.deadline < now && !$0.isAnswered }
            // Answered waiters leave the queue at once, so a hung disk cannot grow it without bound.
            state.pending.removeAll { $0.deadline < now }
            return expired
        }
        for waiter in expired { waiter.answer(.failure(Self.unavailable)) }
        // Once a hang, not once a watchdog tick (up to 20 lines a second under load: the final review).
        let first =
            !expired.isEmpty
            && state.withLock { state in
                defer { state.expiring = true }
                return !state.expiring
            }
        if first { logger.error("the audit log did not answer in time; refusing audited operations") }
    }

    // MARK: On the queue

    private func drain() {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let batch = state.pending.filter { !$0.isAnswered }
                state.pending.removeAll()
                state.inFlight = batch
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                try write(batch)
                let refused = state.withLock { state in
                    defer { (state.failedBatches, state.expiring) = (0, false) }
                    return state.failedBatches
                }
                if refused > 0 {
                    logger.notice(
                        "audit log writes work again; audited operations are accepted",
                        metadata: ["refusedBatches": "\(refused)"])
                }
                for waiter in batch { waiter.answer(.success(())) }
            } catch {
                let first = state.withLock { state in
                    state.failedBatches += 1
                    return state.failedBatches == 1
                }
                if first {
                    logger.error(
                        "audit log write failed; refusing audited operations until it works",
                        metadata: ["detail": "\(error)"])
                }
                for waiter in batch { waiter.answer(.failure(Self.unavailable)) }
            }
        }
    }

    /// Appends the batch as one write; a batch with a durable entry ends with a
    /// signed checkpoint and is fsynced (group commit: one signature, one fsync).
    private func write(_ batch: [Waiter]) throws {
        let durable = batch.contains { $0.durable }
        let due = state.withLock { state in
            state.closing || state.rewriteUnsynced
                || state.unsignedSince.map { .now - $0 >= checkpointInterval }
                    ?? false
        }
        try append(batch.flatMap(\.events), checkpoint: durable || due)
        if !(durable || due) { scheduleFlush() }
    }

    /// Appends entry lines (and a checkpoint covering them and everything
    /// before) in one write, fsyncing when it checkpoints. On any failure the
    /// file is cut back to its last good size and the chain does not advance.
    private func append(_ events: [AuditEvent], checkpoint: Bool) throws {
        let (firstSeq, knownPrev, knownSize, signedSeq, crashTailUnmarked) = state.withLock {
            ($0.seq, $0.prev, $0.goodSize, $0.signedSeq, $0.crashTailUnmarked)
        }
        var firstPrev = knownPrev
        var goodSize = knownSize
        do {
            let current = try writer.reopenIfReplacedAndSize()
            if current.reopened {
                // A new file (the old one was removed or replaced): the chain continues in it.
                goodSize = current.size
                state.withLock { state in
                    state.goodSize = goodSize
                    state.syncedSize = goodSize
                    state.unsynced = Data()
                    state.rewriteUnsynced = false
                }
                logger.warning("the audit log file was replaced; continuing the chain in the new file")
            } else if current.size > goodSize {
                // Only ever cut back what a failed write left behind; never extend.
                try writer.truncate(to: goodSize)
            } else if current.size < goodSize {
                // Cut short by someone else (the same file, truncated in place): what was cut is gone, and
                // the chain goes on from memory after what is left, which `kms audit verify` then reports.
                goodSize = current.size
                state.withLock { state in
                    state.goodSize = goodSize
                    state.syncedSize = min(state.syncedSize, goodSize)
                    state.unsynced = Data()
                    state.rewriteUnsynced = false
                }
                logger.error("the audit log file is shorter than what was written to it; continuing the chain")
            }
            try rewriteUnsyncedIfNeeded()
            // A crash's unmarked tail stays in this file past the size limit until the start's batch has
            // marked it: a rotation's checkpoint written first would sign it, and a failure after that
            // (the rename refused) left it signed and unmarked (a review).
            if goodSize >= maxBytes, !events.isEmpty, !crashTailUnmarked {
                if firstSeq > signedSeq {
                    // Every rotated file ends signed, so each verifies whole on its own.
                    let line = try AuditChain.checkpointLine(
                        covering: firstSeq, time: clock.now(), prev: firstPrev, key: key)
                    try writer.append(Data((line + "\n").utf8))
                    try writer.sync()  // what is signed is durable: `signedSeq` means both
                    firstPrev = AuditChain.hash(line)
                    let size = try writer.size()
                    state.withLock { state in
                        state.prev = firstPrev
                        state.goodSize = size
                        state.signedSeq = firstSeq
                        state.syncedSize = size
                        state.unsynced = Data()
                    }
                }
                try rotate(lastSeq: firstSeq)
            }
            var seq = firstSeq
            var prev = firstPrev
            var data = Data()
            let now = clock.now()
            for event in events {
                seq += 1
                let line = AuditChain.entryLine(seq: seq, time: now, prev: prev, event: event)
                prev = AuditChain.hash(line)
                data.append(contentsOf: line)
                data.append(0x0A)
            }
            if checkpoint {
                let line = try AuditChain.checkpointLine(covering: seq, time: now, prev: prev, key: key)
                prev = AuditChain.hash(line)
                data.append(contentsOf: line.utf8)
                data.append(0x0A)
            }
            try writer.append(data)
            if checkpoint { try writer.sync() }
            let size = try writer.size()
            state.withLock { state in
                state.seq = seq
                state.prev = prev
                state.goodSize = size
                if checkpoint {
                    state.signedSeq = seq
                    state.crashTailUnmarked = false
                    state.unsignedSince = nil
                    state.syncedSize = size
                    state.unsynced = Data()
                } else {
                    if state.unsignedSince == nil { state.unsignedSince = .now }
                    state.unsynced.append(data)
                }
            }
        } catch {
            // Drop whatever part of the batch reached the file; the chain does not advance. What was
            // written before it is written again from memory before the next batch, which then fsyncs.
            let good = state.withLock { state in
                state.rewriteUnsynced = true
                return state.goodSize
            }
            if let size = try? writer.size(), size > good { try? writer.truncate(to: good) }
            throw error
        }
    }

    /// After a failed write or fsync: writes what followed the last good
    /// fsync again, from memory, byte for byte and in place (the chain is
    /// unchanged, and the file never shorter: a crash meanwhile loses
    /// nothing the file held). Pages the kernel dropped after a failed fsync
    /// are then written anew, where the next fsync would otherwise have
    /// reported them durable while they were lost. The batch that follows
    /// fsyncs.
    private func rewriteUnsyncedIfNeeded() throws {
        let (needed, syncedSize, unsynced) = state.withLock { ($0.rewriteUnsynced, $0.syncedSize, $0.unsynced) }
        guard needed else { return }
        if !unsynced.isEmpty { try writer.overwrite(unsynced, at: syncedSize) }
        state.withLock { $0.rewriteUnsynced = false }
    }

    private func rotate(lastSeq seq: UInt64) throws {
        let base = (writer as? AuditFile)?.url.lastPathComponent ?? "audit.log"
        try writer.rotate(to: base + "." + String(repeating: "0", count: max(0, 12 - String(seq).count)) + String(seq))
        state.withLock { state in
            state.goodSize = 0
            state.syncedSize = 0
            state.unsynced = Data()
        }
    }

    private func scheduleFlush() {
        let schedule = state.withLock { state -> Bool in
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        guard schedule else { return }
        let (seconds, attoseconds) = checkpointInterval.components
        let nanoseconds = Int(min(seconds, 86_400)) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) {
            self.state.withLock { $0.flushScheduled = false }
            self.syncIfNeeded()
        }
    }

    /// Signs a checkpoint over the entries not yet covered and fsyncs (the
    /// flush a second after unsigned entries, and at shutdown).
    private func syncIfNeeded() {
        guard state.withLock({ $0.seq > $0.signedSeq }) else { return }
        do {
            try append([], checkpoint: true)
        } catch {
            logger.error("audit log checkpoint or fsync failed; trying again", metadata: ["detail": "\(error)"])
            scheduleFlush()
        }
    }
}
