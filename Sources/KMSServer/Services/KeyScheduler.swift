import Foundation
import KMSCore
import KMSPostgres
import Logging
import ServiceLifecycle

/// lifecycle-v1 sections 1 and 2: every instance runs this; each pass
/// deletes due keys for good and rotates due keys by conditional writes, so
/// of several instances on one database exactly one performs each change and
/// logs its success (client `scheduler`), after a durable intent; a lost race
/// writes nothing and logs its intent's `failure`, `changed=false` (rarely,
/// after a failed write, a deletion found done is another instance's, and
/// both log its success: `KeyRing.runScheduled`). Passes
/// are `interval` ±10 % apart, so instances started together drift apart.
/// Graceful shutdown ends the wait between passes, or a pass between two
/// keys: a pass is never cancelled inside a write, where a deletion could
/// land without its audit entry (a review found that).
///
/// "Due" is judged by this host's clock (lifecycle-v1's `$now`). With a
/// reference (`keys.reference`: the database's clock, on PostgreSQL; on the file store the
/// host's clock at start-up advanced by the monotonic clock, `countedSinceStart`)
/// a pass first compares the two, and while they differ by more than
/// `ReferenceClock.skewLimit` it deletes and rotates nothing on a date:
/// a host whose clock is ahead (booted so, or stepped forward while running)
/// would otherwise delete keys early, for every instance and irreversibly. It
/// says so in the log at every pass until the clock is put right (on the file
/// store, a clock stepped on purpose is accepted by restarting `kms serve`);
/// encryption counts are still recorded.
struct KeyScheduler: Service {
    let keys: KeyRing
    let audit: Auditor
    let interval: Duration
    let logger: Logger

    static let databaseName = "the database's clock"
    static let countedName = "the time counted since kms serve started"
    /// How often the file store's reference is read between passes.
    static let referenceSampling: Duration = .seconds(10)

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let wait = jittered()
            let slept = await cancelWhenGracefulShutdown { () async -> Bool in
                // The file store's reference is read every 10 s between passes, so that a step is judged by
                // when it happened: seen only at a pass (up to an hour apart), a step made just after the ten
                // minutes of boot settling was taken for the first synchronisation (a review).
                var left = wait
                while left > .zero {
                    let step = min(left, Self.referenceSampling)
                    guard (try? await Task.sleep(for: step)) != nil else { return false }
                    left -= step
                    if let reference = keys.reference, reference.isCounted {
                        _ = try? await reference.now()
                    }
                }
                return true
            }
            guard slept, !Task.isShuttingDownGracefully else { break }
            await pass()
        }
        // Graceful shutdown: the counts since the last pass still go to the store.
        skipped(await keys.recordUsage(intent: intent, unwritten: unwritten, report: report))
    }

    /// One pass; each change is audited as soon as it is written, and a
    /// failure is logged and retried at the next pass. Then this process's
    /// encryption counts go to the store (a key whose active version
    /// reached its limit is rotated: `KeyRing.recordUsage`).
    func pass() async {
        do throws(KMSError) {
            if try await clockAgrees() {
                skipped(
                    try await keys.runScheduled(
                        continuing: { !Task.isCancelled && !Task.isShuttingDownGracefully }, intent: intent,
                        unwritten: unwritten, report: report))
            }
        } catch {
            logger.warning("key scheduler pass failed", metadata: ["detail": "\(error.detail ?? error.message)"])
        }
        skipped(await keys.recordUsage(intent: intent, unwritten: unwritten, report: report))
    }

    /// The fields that name a change the scheduler tries.
    private static func fields(_ change: KeyRing.ScheduledChange) -> (type: String, [(String, String)]) {
        switch change {
        case .delete(let keyId, let aliases):
            ("key.delete", [("client", "scheduler"), ("keyId", keyId)] + named(aliases))
        case .rotate(let keyId): ("key.rotate", [("client", "scheduler"), ("keyId", keyId)])
        case .rotateForUsage(let keyId):
            ("key.rotate", [("client", "scheduler"), ("reason", "encryptions"), ("keyId", keyId)])
        }
    }

    /// A deletion's `aliases` (comma-separated, as read before the deletion removed them), when it had any.
    private static func named(_ aliases: [String]) -> [(String, String)] {
        aliases.isEmpty ? [] : [("aliases", aliases.joined(separator: ","))]
    }

    /// A durable intent before the scheduler's write, as a client's key change has one: a process killed
    /// between a deletion's commit and its entry left the key gone with nothing in the log (a review).
    /// A log that cannot take it skips the change until a pass where it can (the key is named as skipped).
    private func intent(_ change: KeyRing.ScheduledChange) async throws(KMSError) {
        let (type, fields) = Self.fields(change)
        // The log's own timeout, not start-up's 30 s: a hung disk would hold a pass (and a shutdown) that
        // long for every due key (a review); a refused intent is tried at the next pass.
        try await audit.log.record(AuditEvent(type, outcome: "intent", fields), durable: true)
    }

    /// The outcome of an intent whose change did not happen here: another instance's or a concurrent
    /// change came first (`changed=false`), or the write failed (`failure` and its code).
    private func unwritten(_ change: KeyRing.ScheduledChange, _ error: KMSError?) async {
        let (type, fields) = Self.fields(change)
        let event =
            if let error {
                AuditEvent(type, outcome: "failure", fields + [("code", error.code.rawValue)])
            } else {
                AuditEvent(type, outcome: "failure", fields + [("changed", "false")])
            }
        await scheduled(event)
    }

    /// Whether this host's clock is within `clockSkewLimit` of the reference
    /// (true without one); logs the hold when it is not. The host's clock is
    /// read as `Date()`, not through `keys`' clock: in production they are
    /// one, and a clock tests move on purpose (`KMS_TEST_CLOCK_OFFSET_MS`, a
    /// manual clock) is not the misconfigured host this guards against.
    private func clockAgrees() async throws(KMSError) -> Bool {
        guard let reference = keys.reference else { return true }
        let ahead = try await reference.hostAhead()
        guard abs(ahead) > ReferenceClock.skewLimit else { return true }
        let remedy =
            reference.isCounted
            ? "it was stepped while kms serve ran; if the new time is right, restart kms serve" : "run NTP"
        logger.error(
            "this host's clock differs from \(reference.name): scheduled deletions and rotations, and changes that set a date, wait until it is put right (\(remedy))",
            metadata: ["hostClockAheadBySeconds": "\(Int(ahead))"])
        return false
    }

    private func report(_ outcome: KeyRing.ScheduledOutcome) async {
        switch outcome {
        case .deleted(let keyId, let aliases):
            await scheduled(
                AuditEvent("key.delete", [("client", "scheduler"), ("keyId", keyId)] + Self.named(aliases)))
            logger.notice("deleted a key whose deletion date passed", metadata: ["keyId": "\(keyId)"])
        case .rotated(let record):
            await scheduled(
                AuditEvent(
                    "key.rotate",
                    [("client", "scheduler"), ("keyId", record.keyId), ("version", "\(record.activeVersion)")]))
            logger.info(
                "rotated a key on its schedule",
                metadata: ["keyId": "\(record.keyId)", "version": "\(record.activeVersion)"])
        case .rotatedForUsage(let record):
            await scheduled(
                AuditEvent(
                    "key.rotate",
                    [
                        ("client", "scheduler"), ("reason", "encryptions"), ("keyId", record.keyId),
                        ("version", "\(record.activeVersion)"),
                    ]))
            logger.notice(
                "rotated a key whose active version reached its encryption limit",
                metadata: ["keyId": "\(record.keyId)", "version": "\(record.activeVersion)"])
        }
    }

    /// At most five lines a pass, then one with the count of the rest: one shared cause (a full disk)
    /// made one line per key, every pass (a review: 61 in a second).
    private func skipped(_ failures: [(keyId: String, error: KMSError)]) {
        for (keyId, error) in failures.prefix(5) {
            logger.warning(
                "key scheduler skipped a key",
                metadata: ["keyId": "\(keyId)", "detail": "\(error.detail ?? error.message)"])
        }
        if failures.count > 5 {
            logger.warning(
                "key scheduler skipped more keys this pass", metadata: ["keys": "\(failures.count - 5)"])
        }
    }

    /// A change the scheduler made, durable when the disk allows. Not retried
    /// when the write fails: a write given up on for time may still land, and
    /// a retry would then log the change twice (docs/audit.md); the change is
    /// done either way, and the log line says its entry is missing.
    private func scheduled(_ event: AuditEvent) async {
        do {
            try await audit.log.record(event, durable: true, wait: AuditLog.startupWait)
        } catch {
            logger.error(
                "could not write an audit entry of the key scheduler", metadata: ["event": "\(event.type)"])
        }
    }

    private func jittered() -> Duration {
        let milliseconds =
            Double(interval.components.seconds) * 1000
            + Double(interval.components.attoseconds) / 1e15
        return .milliseconds(Int64(milliseconds * Double.random(in: 0.9...1.1)))
    }
}
