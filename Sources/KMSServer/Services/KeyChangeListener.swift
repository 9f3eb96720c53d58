import KMSPostgres
import ServiceLifecycle

/// On PostgreSQL, keeps this instance's key cache in step with every other
/// instance (LISTEN on the key-change channel; see `PostgresKeyCache`). It
/// stops at graceful shutdown, which turns the cache off: requests still
/// draining read their keys from the database.
struct KeyChangeListener: Service {
    let store: PostgresKeyStore

    func run() async throws {
        await cancelWhenGracefulShutdown { await store.listenForKeyChanges() }
    }
}
