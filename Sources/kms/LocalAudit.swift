import Crypto
import Foundation
import KMSCore
import KMSServer
import Logging

/// The audit record of a verb run on the server's host with the servers
/// stopped (`kms clients add --local`, `kms restore`): entries in the log
/// `kms serve` writes (`KMS_AUDIT_LOG`), under the store's audit key, marked
/// `via` = `local`, so what was done to a store offline stands in the record
/// that the server's own entries continue.
enum LocalAudit {
    /// The fields that mark an entry written by a local verb.
    static let via: [(String, String)] = [("via", "local"), ("client", "local")]

    /// The configured log, continued under `key` (refused when another key
    /// signed it, as `kms serve` refuses it).
    static func open(_ config: KMSConfiguration, key: Curve25519.Signing.PrivateKey, logger: Logger) async throws
        -> AuditLog
    {
        try await AuditLog.open(
            at: config.auditLog, key: key, clock: SystemClock(), maxBytes: config.auditMaxBytes, logger: logger)
    }

    /// Runs `change` between a durable `intent` entry of `type` and its
    /// outcome, as the server records a key change: nothing changes unless
    /// the intent is on disk, and a result entry that cannot be written leaves
    /// the intent without its result (docs/audit.md), never a `failure` for a
    /// change that happened. `result` names what the change made.
    static func around<T>(
        _ log: AuditLog, _ type: String, _ fields: [(String, String)], result: (T) -> [(String, String)],
        _ change: () async throws -> T
    ) async throws -> T {
        try await log.record(AuditEvent(type, outcome: "intent", via + fields), durable: true)
        let value: T
        do {
            value = try await change()
        } catch {
            await log.recordBestEffort(AuditEvent(type, outcome: "failure", via + fields))
            await log.close()
            throw error
        }
        do {
            try await log.record(AuditEvent(type, via + fields + result(value)), durable: true)
        } catch {
            await log.close()
            throw error
        }
        await log.close()
        return value
    }
}
