import KMSCore
import KMSPostgres
import ServiceLifecycle

/// At graceful shutdown, after the server has drained: closes the audit log
/// (signing what is written, and whatever is written after) and the database pool.
struct AuditFlusher: Service {
    let log: AuditLog
    let database: PostgresDatabase?

    func run() async throws {
        try? await gracefulShutdown()
        await log.close()
        database?.shutdown()
    }
}
