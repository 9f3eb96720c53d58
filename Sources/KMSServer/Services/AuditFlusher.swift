import KMSCore
import ServiceLifecycle

/// Flushes the audit log at graceful shutdown, after the server has drained.
struct AuditFlusher: Service {
    let log: AuditLog

    func run() async throws {
        try? await gracefulShutdown()
        await log.flush()
    }
}
