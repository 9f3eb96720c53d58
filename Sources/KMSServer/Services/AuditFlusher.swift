import KMSCore
import KMSPostgres
import ServiceLifecycle

/// At graceful shutdown, after the server has drained: flushes the audit log
/// and closes the database pool.
struct AuditFlusher: Service {
    let log: AuditLog
    let database: PostgresDatabase?

    func run() async throws {
        try? await gracefulShutdown()
        await log.flush()
        database?.shutdown()
    }
}
