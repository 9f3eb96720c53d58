import ArgumentParser
import Crypto
import Foundation
import KMSClient
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSServer
import Logging
import Synchronization

/// `kms backup --out FILE [--force]` and `kms restore FILE
/// [--replace-server-secrets]` (lifecycle-v1 section 6), configured as
/// `kms serve` is (KMS_STORE, KEY_STORE_PATH, KMS_DATABASE_URL, the master key).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write every key, alias, server secret and client record to one checkable file.",
        discussion: """
            Runs with servers stopped or running. Everything stays wrapped by the master key, which is not in \
            the file (keep it apart); sessions and the audit log are not included. The last line carries the \
            file's SHA-256 (checkable without the key) and an HMAC under the master key. Every wrapped value is \
            opened first: a backup that could not be restored is never written.
            """)

    @Option(help: "The backup file (written mode 0600 via a temporary file and a rename), or - for standard output.")
    var out: String
    @Flag(help: "Replace FILE when it exists.") var force = false

    func run() async throws {
        if out == "-", isatty(STDOUT_FILENO) == 1 { throw ValidationError(terminalRefusal) }
        let url = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        if out != "-", FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
            guard !isFolder.boolValue else {
                throw ValidationError("\(out) is a folder; --out names the file to write")
            }
            guard force else { throw ValidationError("\(out) exists; pass --force to replace it") }
        }
        // A link or a device (`--out /dev/stdout --force`) would be replaced by the backup (the file probe
        // found the same of the file verbs' outputs): the file's own path, or - for standard output.
        if out != "-", let problem = AtomicOutputFile.unusableDestination(url) {
            throw ValidationError("\(out) \(problem); give - to write to standard output")
        }
        // The file is written through temporary names beside it, `.NAME.tmp-<uuid>` (42 bytes more), twice
        // over without --force (a copy published with link(2)): a longer name failed after the whole read
        // with "File name too long" (a review).
        let extra = DurableFile.temporaryNameExtraBytes
        let longest = Int(NAME_MAX) - (force ? extra : 2 * extra)
        if out != "-", url.lastPathComponent.utf8.count > longest {
            throw ValidationError(
                "the file name of --out may have at most \(longest) bytes\(force ? "" : " without --force (\(Int(NAME_MAX) - extra) with it)"): it is written through a temporary copy beside it, whose name is longer"
            )
        }
        let (config, masterKey, database) = try await BackupSetup.open()
        defer { database?.shutdown() }
        if config.store == .file, let refusal = FileBackupStore.interruptedRestoreRefusal(in: config.keyStorePath) {
            // Not what any backup held: a backup of it would restore cleanly into the wrong store.
            throw CLIFailure(message: refusal)
        }
        let (data, counts) = try await BackupSetup.offline { () async throws(KMSError) in
            let contents =
                if let database {
                    try await PostgresBackupStore(database: database).read()
                } else {
                    try await FileBackupStore.read(folder: config.keyStorePath)
                }
            let data = try BackupFile.encode(
                contents, store: config.store.rawValue, createdAt: Date(), masterKey: masterKey)
            return (data, try BackupFile.decode(data, masterKey: masterKey).counts)
        }
        if out == "-" {
            // Standard output carries the file; the counts go to standard error.
            do {
                try writeToStandardOutput(data)
            } catch {
                throw CLIFailure(message: "cannot write the backup to standard output: \(error.localizedDescription)")
            }
            writeToStandardError("\(BackupSetup.json(counts))\n")
            return
        }
        // What earlier backups killed while they wrote left in this folder (`BackupLeftovers`).
        for name in BackupLeftovers.remove(in: url.deletingLastPathComponent()) {
            writeToStandardError("removed \(name), a hidden copy an interrupted backup left\n")
        }
        do {
            if force {
                try DurableFile.write(data, to: url, mode: 0o600)
            } else {
                // Published with link(2): a file that appeared meanwhile is kept, not replaced.
                guard try DurableFile.createExclusive(data, at: url) else {
                    throw ValidationError("\(out) exists; pass --force to replace it")
                }
            }
        } catch let error as ValidationError {
            throw error
        } catch let failure as DurableFile.Failure where !force && failure.noHardLinks {
            // A USB drive's vfat or exFAT (a review: "Operation not permitted", and no word of --force).
            throw ValidationError(
                "cannot write \(out): \(failure); its file system may have no hard links (vfat, exFAT), which a backup without --force needs so as never to replace a file: pass --force to write it by rename (a file of that name is then replaced)"
            )
        } catch {
            throw ValidationError("cannot write \(out): \(error)")
        }
        printJSONText(BackupSetup.json(counts))
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a never-started store, after checking every byte of it.",
        discussion: """
            Checks the file's SHA-256 and its MAC under this master key, opens every wrapped value and checks \
            the counts; writes (PostgreSQL: one transaction; file store: staged, then renamed in); reads \
            everything back, compares each version's material and round-trips a probe through every enabled \
            key. Any failure leaves the store as it was. Records the restore in KMS_AUDIT_LOG (docs/audit.md). \
            Prints the counts as one JSON object. Never creates a master key.
            """)

    @Argument(help: "The backup file, or a pipe (/dev/stdin: … | kms restore /dev/stdin).") var file: String
    @Flag(help: "The store holds only what a first start made (server secrets, the bootstrap admin): replace it.")
    var replaceServerSecrets = false
    @Flag(
        help: ArgumentHelp(
            "Bring back disabled each restored key whose deletion date has passed (as kms keys cancel-deletion would).",
            discussion: "Without it, kms serve's first scheduler pass deletes such keys again."))
    var cancelPassedDeletions = false

    func run() async throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("\(file) is a folder; name the backup file")
        }
        // Read as the store reads its files, a pipe too (`… | kms restore /dev/stdin`), up to a size no backup
        // of a personal KMS reaches: a named pipe with no writer held the command, and /dev/zero filled the
        // memory (a review). What cannot begin a backup (its header, one JSON line) is refused at once.
        let data: Data
        do {
            guard
                let read = try DurableFile.readIfPresent(
                    URL(fileURLWithPath: file), maxBytes: 4 << 30, acceptsPipes: true, opening: Self.backupOpening)
            else {
                throw ValidationError("cannot read \(file): no such file")
            }
            data = read
        } catch let failure as DurableFile.Failure {
            throw ValidationError("cannot read \(file): \(failure.description)")
        }
        let config = try KMSConfiguration.forCommand()
        // Refused while a server writes this store (it would go on writing under the restored files), and
        // no server starts on it until the restore is done. The file store's own lock, whatever the audit
        // log is called; on PostgreSQL, a local server's audit-log lock here, and in the restore's
        // transaction the running lock every server holds in the database (PostgresBackupStore).
        let writerLock: AuditWriterLock?
        var auditLock: AuditWriterLock?
        do {
            if config.store == .file {
                writerLock = try AuditWriterLock.acquire(forStore: config.keyStorePath)
                // A server whose store folder was moved or emptied under it holds the old folder's
                // lock, but still its log's: refused too (docs/api.md: never move a running store).
                if FileManager.default.fileExists(atPath: config.auditLog.path) {
                    do {
                        auditLock = try AuditWriterLock.acquire(forLog: config.auditLog)
                    } catch  where !error.held {
                        throw error  // a lock file that could not be made: said below, with advice
                    } catch {
                        throw CLIFailure(
                            message:
                                "\(config.auditLog.path) (KMS_AUDIT_LOG) is held by a running server. If it serves this store, stop it first; if it serves another, give this restore the new instance's own KMS_AUDIT_LOG (a restore reads the log's lock only to find a server whose store was moved under it)"
                        )
                    }
                }
            } else if FileManager.default.fileExists(atPath: config.auditLog.path) {
                writerLock = try AuditWriterLock.acquire(forLog: config.auditLog)
            } else {
                writerLock = nil
            }
        } catch let failure as AuditWriterLock.Failure {
            // Held by another process: said as it is. A lock file this user cannot make or open: the same advice as
            // a log it cannot read (a review: it was "held by a running server").
            guard !failure.held else { throw CLIFailure(message: failure.description) }
            let denied = isPermissionDenied(failure.code)
            throw CLIFailure(
                message: "nothing was restored: \(failure.description)"
                    + (denied ? ": run kms restore as the user kms serve runs as (docs/deploy.md)" : ""))
        }
        defer { withExtendedLifetime((writerLock, auditLock)) {} }
        // Whether this process holds the audit log's lock (taken above when the log was there).
        let logLocked = (config.store == .file ? auditLock : writerLock) != nil
        let (_, masterKey, database) = try await BackupSetup.open(migrate: true, label: "kms-restore")
        defer { database?.shutdown() }
        // The server's clock, test offset included, decides what "passed" means.
        let now = OffsetClock(base: SystemClock(), offsetMs: config.testClockOffsetMs).now()
        let cancel = cancelPassedDeletions
        var logger = Logger(label: "kms-restore")
        logger.logLevel = .warning
        let secrets = BackupSetup.secrets(config, database)
        let fields = [
            ("sha256", SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()),
            ("store", config.store.rawValue), ("replaceServerSecrets", "\(replaceServerSecrets)"),
        ]
        // A store a first start made (what --replace-server-secrets replaces) has an audit key and,
        // here, that start's log: the restore is that log's last record, under the key it replaces.
        let priorKey = try await BackupSetup.offline(
            // An operator-mistakes review: "internal_error: a wrapped secret … did not open" said nothing of
            // what to do.
            secretDidNotOpen:
                "nothing was restored: this store's audit key does not open under the master key given, so the store was started under another master key (or its audit key is damaged). "
                + (config.store == .file
                    ? "Restore into an empty store: stop the server, move KEY_STORE_PATH, the audit log and the admin key aside (docs/deploy.md, restoring onto a new machine), then run kms restore again"
                    : "Restore into a new KMS_DATABASE_PREFIX with this instance's audit log moved aside (docs/deploy.md), then run kms restore again")
        ) { () async throws(KMSError) in
            logLocked ? try await AuditFiles.existingKey(store: secrets, masterKey: masterKey) : nil
        }
        // A log at KMS_AUDIT_LOG that another audit key signed, with no store beside it to say so (the store
        // moved aside and the log left, as a log folder of its own makes easy): refused before anything is
        // written, as a store started under another key is (an operator's review: the restore went ahead
        // with a warning, and the server then refused to start on it).
        let existingLog: AuditFiles.Resume
        do {
            existingLog = try AuditFiles.resume(config.auditLog)
        } catch {
            // A log this user may not read or write is not damaged: said as a permission, not "move it aside",
            // which would begin a new log beside a good one (an operator's walkthrough).
            // Decided from the read that failed, which names its file (a rotated one too), not a second look (a
            // review: a damaged log that this user could not write was called a permission problem).
            if let failure = error as? DurableFile.Failure, isPermissionDenied(failure.code) {
                throw CLIFailure(
                    message:
                        "nothing was restored: the audit log (KMS_AUDIT_LOG) cannot be read by this user (\(failure.description)): run kms restore as the user kms serve runs as (docs/deploy.md)"
                )
            }
            // The server would refuse this log at its start (a review: a damaged log passed the check below).
            throw CLIFailure(
                message:
                    "nothing was restored: \(config.auditLog.path) (KMS_AUDIT_LOG) cannot be read as an audit log (\(error)): move it and its rotated files aside (docs/deploy.md, restoring onto a new machine), then run kms restore again"
            )
        }
        if priorKey == nil, let signed = existingLog.lastSigned,
            let backup = try? BackupFile.decode(data, masterKey: masterKey).0,
            let blob = backup.secrets.first(where: { $0.name == AuditFiles.keyBlob }),
            let backupKey = try? AuditFiles.key(fromBlob: blob.wrapped, masterKey: masterKey),
            !AuditChain.verifySignature(signed, publicKey: backupKey.publicKey)
        {
            throw CLIFailure(
                message:
                    "nothing was restored: \(config.auditLog.path) (KMS_AUDIT_LOG) holds a log that another audit key signed, not this backup's, so the server could not start on the restored store: move it and its rotated files (\(config.auditLog.lastPathComponent).*) aside with the store they belonged to (docs/deploy.md, restoring onto a new machine), then run kms restore again"
            )
        }
        var priorLog: AuditLog?
        if let priorKey {
            do {
                priorLog = try await LocalAudit.open(config, key: priorKey, keyExisted: true, logger: logger)
            } catch {
                throw CLIFailure(message: "nothing was restored: \(LocalAudit.reason(error))")
            }
        }
        // The file store stops on a signal only where it is whole (`DeferredSignals`); PostgreSQL's
        // restore is one transaction, which a signal's default action rolls back.
        let signals = database == nil ? DeferredSignals() : nil
        defer { signals?.cancel() }
        // The active clients the backup brings back, for the note below: a device revoked after the backup
        // was made is active again (an operator's review restored one and a lost tablet decrypted).
        let broughtBack = Mutex<[String]>([])
        let restore = { () async throws -> (BackupContents.Counts, [String], Date?) in
            try await BackupSetup.offline { () async throws(KMSError) in
                let (decoded, counts, _, createdAt) = try BackupFile.decode(data, masterKey: masterKey)
                broughtBack.withLock {
                    $0 = decoded.clients.compactMap {
                        ClientRegistry.open(sealed: $0.sealed, clientId: $0.clientId, masterKey: masterKey)
                    }.filter { $0.revokedAt == nil }.map(\.name).sorted()
                }
                let passed = decoded.keys.filter { $0.isDueForDeletion(at: now) }.map(\.keyId)
                var changed = decoded
                if cancel { changed.cancelDeletions(of: Set(passed), now: now) }
                let contents = changed
                if let database {
                    try await PostgresBackupStore(database: database).restore(
                        contents, masterKey: masterKey, replaceServerSecrets: replaceServerSecrets
                    ) { restored throws(KMSError) in
                        try await contents.verify(restored: restored, masterKey: masterKey)
                    }
                } else {
                    try await FileBackupStore.restore(
                        contents, into: config.keyStorePath, masterKey: masterKey,
                        replaceServerSecrets: replaceServerSecrets, lifecycle: config.keyLifecycle
                    ) { signals?.signalNumber != nil }
                }
                return (counts, passed, createdAt)
            }
        }
        let (counts, passed, createdAt): (BackupContents.Counts, [String], Date?)
        do {
            if let priorLog {
                (counts, passed, createdAt) = try await LocalAudit.around(
                    priorLog, "backup.restore", fields,
                    result: { Self.resultFields($0.0, passed: $0.1, cancel, createdAt: $0.2) }, restore)
            } else {
                (counts, passed, createdAt) = try await restore()
                let entry = fields + Self.resultFields(counts, passed: passed, cancel, createdAt: createdAt)
                if let reason = await Self.beginLog(
                    config, entry, secrets: secrets, masterKey: masterKey, lockHeld: logLocked, logger)
                {
                    writeToStandardError(
                        "warning: the restore is done, but its entry was not written to \(config.auditLog.path) (KMS_AUDIT_LOG): \(reason)\n"
                    )
                }
            }
        } catch {
            // Ended as the signal would have ended it, with what the restore says it left.
            if let signals, let number = signals.signalNumber { signals.end(by: number, reporting: error) }
            throw error
        }
        if let number = signals?.signalNumber {
            writeToStandardError(
                "note: signal \(number) came while the restore was moving files into place; it finished first, since stopping there would have left the store part old, part restored\n"
            )
        }
        if let note = Self.passedDeletionsNote(passed, cancelled: cancelPassedDeletions) {
            writeToStandardError(note)
        }
        let active = broughtBack.withLock { $0 }
        if !active.isEmpty {
            let shown = active.prefix(20).joined(separator: ", ") + (active.count > 20 ? ", …" : "")
            writeToStandardError(
                "note: the backup was made \(createdAt.map { Timestamp.format($0) } ?? "at a time it does not say"), and the active client(s) it holds are back as they were then, with their grants and access keys: \(shown). A device revoked since then can exchange keys again, and an access key revoked or a grant narrowed since is back too: start the server once with KMS_HOST=127.0.0.1, KMS_WHITELIST=127.0.0.1,::1 and KMS_AWS_PORT= (empty), with any reverse proxy in front of it stopped, and redo those changes through it from this host, or over an SSH tunnel from your admin device (kms clients revoke NAME --url http://127.0.0.1:PORT), before your devices can reach it (docs/deploy.md)\n"
            )
        }
        if let priorKey, replaceServerSecrets {
            // The first start's audit key was replaced with the backup's: its log no longer verifies here.
            let publicKey = priorKey.publicKey.rawRepresentation.base64EncodedString()
            writeToStandardError(
                "note: \(config.auditLog.path) is the log of the first start this restore replaced, and ends with the restore; its audit key is gone, so move the log aside before starting the server, which then begins a log of its own. Keep its public key with it: kms audit verify FILE --public-key \(publicKey) (docs/api.md, backup and restore)\n"
            )
        }
        if database == nil, let warning = DurableFile.looseness(of: config.keyStorePath) {
            // As serve warns at start: a store folder others can write lets them swap its files.
            writeToStandardError("warning: \(warning)\n")
        }
        printJSONText(BackupSetup.json(counts))
        // Finished, and then ended by the signal that came during the renames: a script's shell stops as
        // the Ctrl-C asked, where an exit 0 let it carry on (a review).
        if let signals, let number = signals.signalNumber { signals.end(by: number) }
    }
}

extension RestoreCommand {
    /// Why the first bytes of an input cannot begin a backup (nil: they can): a backup's first line is its
    /// JSON header, about a hundred bytes, naming its format. Judged before the rest is read, so that a
    /// wrong pipe (`cat /dev/zero`, a JSON log) is refused at once instead of read to the size cap.
    static func backupOpening(_ first: Data) -> String? {
        guard first.first == UInt8(ascii: "{") else { return "not a kms backup (it does not begin with its header)" }
        guard let end = first.firstIndex(of: 0x0A) else {
            return first.count < DurableFile.openingBytes
                ? nil  // the whole input: judged in full by the decoder
                : "not a kms backup (no header line in its first \(DurableFile.openingBytes) bytes)"
        }
        guard case .object(let members)? = try? JSONParser.parse(first[first.startIndex..<end]),
            members.contains(where: { $0.0 == "format" && $0.1 == .string(BackupFile.format) })
        else { return "not a kms backup (its first line is not a \(BackupFile.format) header)" }
        return nil
    }

    /// What a restore entry says it wrote: the counts, and the keys whose
    /// deletion date had passed (cancelled or left). `backupCreatedAt`: the backup's own date, so that the
    /// log says how far back the restore went (a review: it read the date and dropped it).
    static func resultFields(
        _ counts: BackupContents.Counts, passed: [String], _ cancelled: Bool, createdAt: Date?
    ) -> [(String, String)] {
        counts.members.map { ($0.0, "\($0.1)") } + [
            (cancelled ? "cancelledDeletions" : "passedDeletions", "\(passed.count)"),
            ("backupCreatedAt", createdAt.map { Timestamp.format($0) } ?? "not a timestamp"),
        ]
    }

    /// Begins (or continues) the restored instance's log with the restore,
    /// under the audit key the backup brought, so the first start continues
    /// a record that says where its keys came from. The restore is done by
    /// now: a failure here is the reason it returns, said as a warning.
    static func beginLog(
        _ config: KMSConfiguration, _ fields: [(String, String)], secrets: any SecretBlobStore, masterKey: MasterKey,
        lockHeld: Bool, _ logger: Logger
    ) async -> String? {
        do {
            guard let key = try await AuditFiles.existingKey(store: secrets, masterKey: masterKey) else {
                return "the backup holds no audit key (the first start makes one and begins the log)"
            }
            let lock = lockHeld ? nil : try AuditWriterLock.acquire(forLog: config.auditLog)
            defer { withExtendedLifetime(lock) {} }
            // The key came with the backup: a log it begins is not a wiped one, and its first entry,
            // backup.restore, says where the keys came from.
            let log = try await LocalAudit.open(config, key: key, keyExisted: false, logger: logger)
            try await log.record(AuditEvent("backup.restore", LocalAudit.via + fields), durable: true)
            await log.close()
            return nil
        } catch {
            return LocalAudit.reason(error)
        }
    }

    /// What the restore did or left about keys whose deletion date passed: a
    /// backup that brings back a deleted key was made during its waiting
    /// period, so without `--cancel-passed-deletions` the key would be deleted
    /// again a minute after the server starts (a review saw it, silently).
    static func passedDeletionsNote(_ keyIds: [String], cancelled: Bool) -> ShownText? {
        guard !keyIds.isEmpty else { return nil }
        let shown =
            keyIds.prefix(10).joined(separator: ", ") + (keyIds.count > 10 ? ", and \(keyIds.count - 10) more" : "")
        if cancelled {
            return
                "note: the deletion of \(keyIds.count) restored key(s) whose deletion date had passed was cancelled; they are disabled (kms keys enable KEY to use one): \(shown)\n"
        }
        return
            "warning: \(keyIds.count) restored key(s) are pending deletion with a date that has passed, so kms serve's scheduler deletes them again at its first pass (about one KMS_SCHEDULER_INTERVAL_MS after it starts, a minute by default): \(shown). To keep them, restore again into an empty store (a new folder, or a new KMS_DATABASE_PREFIX or emptied database) with --cancel-passed-deletions\n"
    }
}

enum BackupSetup {
    /// The configuration, the existing master key (never a new one) and, for
    /// `KMS_STORE=postgres`, the database with its migrations applied.
    /// `migrate`: only restore changes the schema (rule 9.8); backup and doctor refuse a mismatch.
    /// `label`: the verb its warnings are written under (`kms tls-cert` opens the store this way too).
    static func open(migrate: Bool = false, label: String = "kms-backup") async throws -> (
        KMSConfiguration, MasterKey, PostgresDatabase?
    ) {
        let config = try KMSConfiguration.forCommand()
        var logger = Logger(label: label)
        logger.logLevel = .warning
        let masterKey = try config.existingMasterKey(logger: logger)
        guard config.store == .postgres else { return (config, masterKey, nil) }
        guard let url = config.databaseURL else { throw ValidationError("set KMS_DATABASE_URL") }
        let database = try await PostgresDatabase(
            url: url, prefix: config.databasePrefix, logger: logger, migrate: migrate,
            callTimeout: config.databaseCallTimeout)
        return (config, masterKey, database)
    }

    /// Where the store's secrets (the identity key, the audit key, the AWS door's certificate) are: the
    /// database when one is open, else the file store's folder.
    static func secrets(_ config: KMSConfiguration, _ database: PostgresDatabase?) -> any SecretBlobStore {
        database.map { PostgresSecretBlobStore(database: $0) } ?? FileSecretBlobStore(folder: config.keyStorePath)
    }

    /// Runs a backup or restore step; a refusal reads as what it is for a
    /// command run on the server's host (the message without a server's
    /// wording such as "see its log", with the detail that names the cause).
    /// `body`'s storage errors as the verb's failure; `secretDidNotOpen`, when given, replaces the message of a
    /// secret that does not open under the master key given.
    static func offline<T>(secretDidNotOpen: String? = nil, _ body: () async throws(KMSError) -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            if error.secretDidNotOpen, let secretDidNotOpen { throw CLIFailure(message: secretDidNotOpen) }
            throw CLIFailure(message: "\(error.code.rawValue): \(error.detail ?? error.message)")
        }
    }

    static func json(_ counts: BackupContents.Counts) -> String {
        "{" + counts.members.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// A system call refused for want of permission (EACCES, or EPERM where a file system says so): restore's
/// two permission checks judge it alike (a final read found one taking EPERM and the other not).
func isPermissionDenied(_ code: Int32?) -> Bool { code == EACCES || code == EPERM }
