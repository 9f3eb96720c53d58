import Crypto
import Foundation
import KMSCore
import KMSServer
import Logging

/// The audit record of a verb run on the server's host with the servers
/// stopped (`kms clients add --local`, `kms restore`, `kms migrate`): entries in the log
/// `kms serve` writes (`KMS_AUDIT_LOG`), under the store's audit key, marked
/// `via` = `local`, so what was done to a store offline stands in the record
/// that the server's own entries continue.
enum LocalAudit {
    /// The fields that mark an entry written by a local verb, with the operating-system user who ran it
    /// (an audit review: `client: local` said nothing of who; `sudoUser` too, as `SUDO_USER` gives it: the
    /// person behind a root shell when sudo set it, not verified, since whoever runs a local verb holds the
    /// audit key anyway).
    static let via: [(String, String)] =
        [("via", "local"), ("client", "local"), ("osUser", osUser)]
        + (ProcessInfo.processInfo.environment["SUDO_USER"].map { [("sudoUser", $0)] } ?? [])

    /// The effective user's name and uid (`root (uid 0)`), or the uid alone when it has no name.
    static var osUser: String {
        let uid = geteuid()
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "\(String(cString: name)) (uid \(uid))"
    }

    /// The configured log, continued under `key` (refused when another key
    /// signed it, as `kms serve` refuses it). Its entries wait for the disk
    /// as start-up's do (`AuditLog.startupWait`): no client is waiting, and a
    /// cold disk's first fsync can take seconds.
    ///
    /// An empty or missing log under an audit key that already existed begins with `audit.new-log`, as
    /// `kms serve` begins one (a review: `kms clients add --local` over a wiped log began it at seq 1
    /// unmarked, and the next start, finding entries, added no marker either). `keyExisted` has no
    /// default: a caller that made the key just now must say so, or a first start's log would be
    /// marked as a wiped one.
    static func open(
        _ config: KMSConfiguration, key: Curve25519.Signing.PrivateKey, keyExisted: Bool, logger: Logger
    ) async throws -> AuditLog {
        try await AuditLog.open(
            at: config.auditLog, key: key, clock: SystemClock(), maxBytes: config.auditMaxBytes,
            timeout: AuditLog.startupWait,
            newLogReason: keyExisted ? config.newLogReason + " (begun by a kms verb run beside a stopped server)" : nil,
            newLogLevel: config.newLogLevel, logger: logger)
    }

    /// Runs `change` between a durable `intent` entry of `type` and its
    /// outcome, as the server records a key change: nothing changes unless
    /// the intent is on disk. A failed change is recorded as `failure` with
    /// its `reason`. Once the change is done it is reported done: a result
    /// entry that cannot be written leaves the intent without its result
    /// (docs/audit.md) and a warning on standard error, never an error that
    /// would send the person to retry what already happened. `result` names
    /// what the change made.
    static func around<T>(
        _ log: AuditLog, _ type: String, _ fields: [(String, String)], result: (T) -> [(String, String)],
        _ change: () async throws -> T
    ) async throws -> T {
        do {
            try await log.record(AuditEvent(type, outcome: "intent", via + fields), durable: true)
        } catch {
            await log.close()
            throw CLIFailure(message: "nothing was changed: its audit entry could not be written (\(reason(error)))")
        }
        let value: T
        do {
            value = try await change()
        } catch {
            await log.recordBestEffort(AuditEvent(type, outcome: "failure", via + fields + [("reason", reason(error))]))
            await log.close()
            throw error
        }
        do {
            try await log.record(AuditEvent(type, via + fields + result(value)), durable: true)
        } catch {
            writeToStandardError(
                "warning: done, but the result entry was not written to the audit log, which holds its intent only: \(reason(error))\n"
            )
        }
        await log.close()
        return value
    }

    /// An error as a local verb says it: a `KMSError`'s detail or message,
    /// without the server's wording ("see its log") meant for a client.
    static func reason(_ error: any Error) -> String {
        if let error = error as? KMSError { return "\(error.code.rawValue): \(error.detail ?? error.message)" }
        return "\(error)"
    }
}
