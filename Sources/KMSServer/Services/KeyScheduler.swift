import KMSCore
import Logging
import ServiceLifecycle

/// lifecycle-v1 sections 1 and 2: every instance runs this; each pass
/// deletes due keys for good and rotates due keys by conditional writes, so
/// of several instances on one database exactly one performs each change and
/// logs it (client `scheduler`); a lost race writes and logs nothing. Passes
/// are `interval` ±10 % apart, so instances started together drift apart. It
/// stops at graceful shutdown between passes.
struct KeyScheduler: Service {
    let keys: KeyRing
    let audit: Auditor
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: jittered())
                } catch {
                    return
                }
                await pass()
            }
        }
    }

    /// One pass; each change is audited as soon as it is written, and a
    /// failure is logged and retried at the next pass.
    func pass() async {
        do throws(KMSError) {
            let failures = try await keys.runScheduled { outcome in
                switch outcome {
                case .deleted(let keyId):
                    await audit.scheduled(AuditEvent("key.delete", [("client", "scheduler"), ("keyId", keyId)]))
                    logger.notice("deleted a key whose deletion date passed", metadata: ["keyId": "\(keyId)"])
                case .rotated(let record):
                    await audit.scheduled(
                        AuditEvent(
                            "key.rotate",
                            [("client", "scheduler"), ("keyId", record.keyId), ("version", "\(record.activeVersion)")]))
                    logger.info(
                        "rotated a key on its schedule",
                        metadata: ["keyId": "\(record.keyId)", "version": "\(record.activeVersion)"])
                }
            }
            for (keyId, error) in failures {
                logger.warning(
                    "key scheduler skipped a key",
                    metadata: ["keyId": "\(keyId)", "detail": "\(error.detail ?? error.message)"])
            }
        } catch {
            logger.warning("key scheduler pass failed", metadata: ["detail": "\(error.detail ?? error.message)"])
        }
    }

    private func jittered() -> Duration {
        let milliseconds =
            Double(interval.components.seconds) * 1000
            + Double(interval.components.attoseconds) / 1e15
        return .milliseconds(Int64(milliseconds * Double.random(in: 0.9...1.1)))
    }
}

extension Auditor {
    /// A change the scheduler made: durable when the disk allows, never
    /// undoing the change (it is done; the entry says so when it can).
    func scheduled(_ event: AuditEvent) async {
        do {
            try await log.record(event, durable: true)
        } catch {
            await log.recordBestEffort(event)
        }
    }
}
