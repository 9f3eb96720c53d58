import Crypto
import Foundation
public import Logging
import Synchronization

/// The tamper-evident audit log: an Ed25519-signed hash chain of JSON lines.
///
/// Writes run one at a time on a serial queue, off Swift's cooperative
/// threads. `record` fails closed — `503 audit_unavailable` — when the entry
/// cannot be written, and also when the disk does not answer within
/// `timeout`, so a stuck disk refuses operations instead of hanging them;
/// requests that need no audit entry are never held up. A failed write is cut
/// back off the file, the chain does not advance, and the next entry simply
/// tries again: recording resumes by itself once the disk works.
///
/// Durability: entries with `durable: true` (key-changing operations) are
/// fsynced before `record` returns; others are written before it returns and
/// fsynced by the next durable entry or within a second.
public final class AuditLog: Sendable {
    private struct State: @unchecked Sendable {
        var seq: UInt64
        var prev: String
        /// File size after the last complete entry.
        var goodSize: Int
        var unsynced = false
        var flushScheduled = false
    }

    private let writer: any AuditFileWriter
    private let key: Curve25519.Signing.PrivateKey
    private let clock: any KMSClock
    private let maxBytes: Int
    private let timeout: Duration
    private let logger: Logger
    private let queue = DispatchQueue(label: "kms.audit")
    private let state: Mutex<State>

    public var publicKey: Curve25519.Signing.PublicKey { key.publicKey }

    /// Continues the chain after (`seq`, `prev`): the last entry already on disk.
    public init(
        writer: any AuditFileWriter, key: Curve25519.Signing.PrivateKey, after seq: UInt64, prev: String,
        clock: any KMSClock, maxBytes: Int, timeout: Duration = .seconds(2), logger: Logger
    ) throws {
        self.writer = writer
        self.key = key
        self.clock = clock
        self.maxBytes = maxBytes
        self.timeout = timeout
        self.logger = logger
        state = Mutex(State(seq: seq, prev: prev, goodSize: try writer.size()))
    }

    /// The last written entry: what `kms audit checkpoint` prints.
    public var head: (seq: UInt64, hash: String) { state.withLock { ($0.seq, $0.prev) } }

    /// Writes `event`; throws `audit_unavailable` (503) if it cannot within the timeout.
    public func record(_ event: AuditEvent, durable: Bool) async throws(KMSError) {
        let outcome = Mutex<Result<Void, KMSError>?>(nil)
        let result: Result<Void, KMSError> = await withCheckedContinuation { continuation in
            let finish = { @Sendable (result: Result<Void, KMSError>) in
                let first = outcome.withLock { current -> Bool in
                    guard current == nil else { return false }
                    current = result
                    return true
                }
                if first { continuation.resume(returning: result) }
            }
            queue.async {
                do {
                    try self.write(event, durable: durable)
                    finish(.success(()))
                } catch {
                    self.logger.error(
                        "audit log write failed; refusing audited operations until it works",
                        metadata: ["detail": "\(error)"])
                    finish(.failure(Self.unavailable))
                }
            }
            let nanoseconds =
                timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) {
                finish(.failure(Self.unavailable))
            }
        }
        try result.get()
    }

    /// Writes `event` if it can; a failure is logged, never thrown (for events
    /// whose operation has already happened and cannot be refused).
    public func recordBestEffort(_ event: AuditEvent) async {
        do {
            try await record(event, durable: false)
        } catch {
            logger.error("could not write an audit entry", metadata: ["event": "\(event.type)"])
        }
    }

    /// fsyncs what was written (shutdown).
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

    // MARK: On the queue

    private func write(_ event: AuditEvent, durable: Bool) throws {
        let (seq, prev, knownSize) = state.withLock { ($0.seq, $0.prev, $0.goodSize) }
        var goodSize = knownSize
        do {
            if try writer.reopenIfReplaced() {
                // A new file (the old one was removed or replaced): the chain continues in it.
                goodSize = try writer.size()
                state.withLock { $0.goodSize = goodSize }
                logger.warning("the audit log file was replaced; continuing the chain in the new file")
            }
            // Only ever cut back what a failed write left behind; never extend.
            if try writer.size() > goodSize { try writer.truncate(to: goodSize) }
            if goodSize >= maxBytes { try rotate(firstSeqOfNext: seq + 1) }
            let line = try AuditChain.line(seq: seq + 1, time: clock.now(), prev: prev, event: event, key: key)
            try writer.append(Data((line + "\n").utf8))
            if durable { try writer.sync() }
            let size = try writer.size()
            state.withLock { state in
                state.seq = seq + 1
                state.prev = AuditChain.hash(line)
                state.goodSize = size
                state.unsynced = !durable
            }
            if !durable { scheduleFlush() }
        } catch {
            // Drop whatever part of the line reached the file; the chain does not advance.
            let good = state.withLock { $0.goodSize }
            if let size = try? writer.size(), size > good { try? writer.truncate(to: good) }
            throw error
        }
    }

    private func rotate(firstSeqOfNext seq: UInt64) throws {
        let name = String(format: "%@.%012llu", (try? rotatedBaseName()) ?? "audit.log", seq - 1)
        try writer.rotate(to: name)
        state.withLock { $0.goodSize = 0 }
    }

    private func rotatedBaseName() throws -> String {
        (writer as? AuditFile)?.url.lastPathComponent ?? "audit.log"
    }

    private func scheduleFlush() {
        let schedule = state.withLock { state -> Bool in
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        guard schedule else { return }
        queue.asyncAfter(deadline: .now() + 1) {
            self.state.withLock { $0.flushScheduled = false }
            self.syncIfNeeded()
        }
    }

    private func syncIfNeeded() {
        guard state.withLock({ $0.unsynced }) else { return }
        do {
            try writer.sync()
            state.withLock { $0.unsynced = false }
        } catch {
            logger.error("audit log fsync failed", metadata: ["detail": "\(error)"])
        }
    }
}
