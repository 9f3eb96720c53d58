import KMSCore
import Logging
import ServiceLifecycle

/// Removes expired sessions and pending inits in the background.
///
/// Expired entries are refused on lookup anyway; this only returns their
/// memory. It stops at graceful shutdown.
struct SessionJanitor: Service {
    let store: any SessionStore
    let clock: any KMSClock
    let interval: Duration
    let logger: Logger
    let audit: Auditor

    func run() async throws {
        await repeatUntilShutdown(every: interval) {
            do throws(KMSError) {
                let removed = try await store.purgeExpired(now: clock.now())
                if removed.sessions > 0 {
                    await audit.note(AuditEvent("session.expire", [("sessions", "\(removed.sessions)")]))
                }
                if removed.sessions + removed.pending > 0 {
                    logger.debug(
                        "removed expired sessions",
                        metadata: ["sessions": "\(removed.sessions)", "pending": "\(removed.pending)"])
                }
            } catch {
                logger.warning("session cleanup failed", metadata: ["detail": "\(error.detail ?? error.message)"])
            }
        }
    }
}
