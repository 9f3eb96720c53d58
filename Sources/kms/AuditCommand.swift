import ArgumentParser
import Crypto
import Foundation
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSServer
import Logging

/// `kms audit verify|checkpoint|public-key`: offline checks of the audit log.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify the tamper-evident audit log, or print its checkpoint or public key.",
        subcommands: [Verify.self, Checkpoint.self, PublicKey.self])

    /// Files given, or the configured log and its rotated predecessors.
    static func files(_ given: [String]) throws -> [URL] {
        let files =
            given.isEmpty
            ? AuditFiles.chain(for: try KMSConfiguration.forCommand().auditLog)
            : given.map {
                URL(fileURLWithPath: $0)
            }
        guard !files.isEmpty else { throw ValidationError("no audit log found at KMS_AUDIT_LOG; name the files") }
        // A typo is not tampering: a usage error (64), where a broken log is 2. So is a file that is not
        // one (a device, a folder: a probe's /dev/null said "BROKEN", exit 2).
        for file in files {
            var info = stat()
            guard stat(file.path, &info) == 0, FileManager.default.isReadableFile(atPath: file.path) else {
                throw ValidationError("\(file.path) cannot be read (no such file, or no permission)")
            }
            guard info.st_mode & S_IFMT == S_IFREG else {
                throw ValidationError("\(file.path) is not a regular file: name the log's files")
            }
        }
        return files
    }

    /// The audit public key: given as base64, or read from the key store with the master key.
    static func publicKey(_ given: String?) async throws -> Curve25519.Signing.PublicKey {
        if let given {
            guard let raw = Base64.decodeStrict(given),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { throw ValidationError("--public-key must be the base64 of a 32-byte Ed25519 public key") }
            return key
        }
        do {
            return try await storedPublicKey()
        } catch let failure as StartupFailure {
            // Configuration, master key or database: a usage error (64), not a verdict on the log (1, 2).
            throw ValidationError("\(failure.description)\(Self.givenKeyHint)")
        }
    }

    /// Where the key could not be read: `verify` also takes it given.
    static let givenKeyHint = "; run this where `kms serve` runs, or give `kms audit verify` the key with --public-key"

    /// The public key of the audit key in the configured store. Only reads: no master
    /// key is created and no database migration runs.
    private static func storedPublicKey() async throws -> Curve25519.Signing.PublicKey {
        let config = try KMSConfiguration.forCommand()
        let logger = Logger(label: "kms")
        guard
            let masterKey = try MasterKeyLoader.loadExisting(
                base64: config.masterKeyBase64, file: config.masterKeyFile)
        else { throw ValidationError("no master key is configured here (KMS_MASTER_KEY_FILE)\(givenKeyHint)") }
        let store: any SecretBlobStore
        var database: PostgresDatabase?
        if config.store == .postgres {
            let opened = try await PostgresDatabase(
                url: config.databaseURL ?? "", prefix: config.databasePrefix, logger: logger, migrate: false,
                callTimeout: config.databaseCallTimeout)
            database = opened
            store = PostgresSecretBlobStore(database: opened)
        } else {
            store = FileSecretBlobStore(folder: config.keyStorePath)
        }
        defer { database?.shutdown() }
        let stored: Curve25519.Signing.PrivateKey?
        do {
            stored = try await AuditFiles.existingKey(store: store, masterKey: masterKey)
        } catch {
            // A wrong master key, an unreachable store: said plainly, as a usage error (exit 64).
            throw ValidationError(
                "cannot read the audit key from the configured store (\(error.detail ?? error.message))\(givenKeyHint)")
        }
        guard let key = stored else {
            throw ValidationError("no audit key in the configured store yet\(givenKeyHint)")
        }
        return key.publicKey
    }

    /// What an `audit.new-log` entry at `start` means, for verify and doctor.
    static func newLogNote(_ start: String) -> String {
        "\(start) begins a new log under an audit key older than it (audit.new-log): an earlier log was moved, deleted or emptied, a first start failed before it wrote one, or on PostgreSQL this instance was new; what it held is not here, and only a checkpoint kept elsewhere (--checkpoint) tells a wiped log from a new instance"
    }

    static func repairNote(_ at: String) -> String {
        "\(at): a start cut a half-written last line (audit.repaired): after a crash mid-write it held nothing acknowledged; if the server did not crash then, the log's end was cut while it was stopped, and only a checkpoint kept elsewhere (--checkpoint) shows what went"
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check sequence, hash chain and every checkpoint signature; report the first broken entry.",
            discussion: """
                Exit code 0 when the chain holds and every entry is covered by a signed checkpoint; 1 when the \
                chain holds but some entries are not signed (the last second of a running server, or a crash's \
                tail), or the log holds no entries; 2 when the log is broken; 64 when the command cannot run \
                (bad arguments, no log found, the audit key unreadable). Files are checked in the order given \
                (oldest first). It only reads.
                """)
        @Argument(help: "Log files, oldest first (default: KMS_AUDIT_LOG and its rotated files).") var files: [String] =
            []
        @Option(name: .customLong("public-key"), help: "Ed25519 public key, base64 (default: from the key store).")
        var publicKey: String?
        @Option(help: "A checkpoint kept elsewhere, SEQ:HASH from `kms audit checkpoint`: reveals a truncated tail.")
        var checkpoint: String?
        @Flag(help: "The first file starts mid-chain (older files were archived); trust its first prev.")
        var partial = false
        @Flag(
            name: .customLong("allow-unsigned-tail"),
            help: ArgumentHelp(
                "Exit 0 when the only unsigned entries follow the last checkpoint and began within the last minute (a running server's last second); while a server holds the log, a last line still being written is left unread."
            ))
        var allowUnsignedTail = false
        @Option(
            name: .customLong("accept-adopted"),
            help: ArgumentHelp(
                "A range a start adopted after a crash (audit.unsigned-tail), which you have reviewed: it no longer makes the exit status 1. Once per range.",
                valueName: "FROM-TO"))
        var acceptAdopted: [String] = []

        /// `--accept-adopted`'s ranges (`3083-3091`, or `3083...3091` as verify prints them).
        func acceptedRanges() throws -> [ClosedRange<UInt64>] {
            try acceptAdopted.map { text in
                let parts = text.replacingOccurrences(of: "...", with: "-").split(
                    separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 2, let from = UInt64(parts[0]), let to = UInt64(parts[1]), from <= to else {
                    throw ValidationError("--accept-adopted takes FROM-TO, as verify names a range (3083-3091)")
                }
                return from...to
            }
        }

        func run() async throws {
            let accepted = try acceptedRanges()
            let key = try await AuditCommand.publicKey(publicKey)
            var mark: AuditVerifier.Checkpoint?
            if let checkpoint {
                guard let parsed = AuditVerifier.Checkpoint(parsing: checkpoint) else {
                    throw ValidationError("--checkpoint must be SEQ:HASH as `kms audit checkpoint` prints it")
                }
                mark = parsed
            }
            let logFiles = try AuditCommand.files(files)
            var report = AuditVerifier.verify(
                files: logFiles, publicKey: key, checkpoint: mark, allowMidChainStart: partial,
                lastLineMayBeInProgress: allowUnsignedTail
                    && (logFiles.last.map(AuditWriterLock.isHeld(forLog:)) ?? false))
            if let failure = report.failure {
                printShown("audit log BROKEN after \(report.entries) valid entries: \(failure)")
                throw ExitCode(2)
            }
            // With --partial a lone checkpoint proves nothing either: the start is taken on trust.
            guard report.entries > 0 || (report.checkpoints > 0 && !partial) else {
                // Nothing was checked, not even the public key: a wiped log looks exactly like this.
                printShown("NOT TAMPER-EVIDENT: the audit log holds no entries, so nothing is verified")
                throw ExitCode(1)
            }
            // A range reviewed once need not keep a monitor red for ever (an operator's review): named exactly
            // as the log has it, or refused, so a typo does not accept another range. One before these files
            // (archived since) is only noted: a standing option must not turn into a usage error (a review).
            let held = (report.first ?? 0)...(report.last ?? 0)
            for range in accepted where !report.adoptedAtRestart.contains(range) && held.overlaps(range) {
                throw ValidationError(
                    "--accept-adopted \(range.lowerBound)-\(range.upperBound): the log has no range adopted after a crash with exactly these entries"
                )
            }
            report.adoptedAtRestart.removeAll { accepted.contains($0) }
            printShown(
                "audit log OK: \(report.entries) entries, seq \(report.first ?? 0)...\(report.last ?? 0), "
                    + "\(report.checkpoints) signed checkpoints; chain and signatures hold")
            for start in report.newLogStarts {
                printShown("note: \(AuditCommand.newLogNote(start))")
            }
            for repair in report.repairs { printShown("note: \(AuditCommand.repairNote(repair))") }
            if let file = report.lineInProgress {
                printShown(
                    "note: \(file) ends in a line still being written (a writer holds the log's lock), not read"
                )
            }
            for range in accepted {
                printShown(
                    held.overlaps(range)
                        ? "note: entries \(range.lowerBound)...\(range.upperBound) were adopted after a crash and accepted as reviewed (--accept-adopted)"
                        : "note: --accept-adopted \(range.lowerBound)-\(range.upperBound) is not in these files (archived?)"
                )
            }
            if let unsigned = report.unsignedSummary {
                printShown("NOT TAMPER-EVIDENT: \(unsigned)")
                guard allowUnsignedTail, report.adoptedAtRestart.isEmpty, report.checkpoints > 0 else {
                    throw ExitCode(1)
                }
                guard report.unsignedOnlyAsALiveTail() else {
                    printShown(
                        "--allow-unsigned-tail exempts only a tail that began within the last \(Int(AuditVerifier.Report.liveTailAge)) s, as a running server's does; this one did not (or its time is unreadable)"
                    )
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Verify the log, then print the last signed entry's SEQ:HASH; keep it elsewhere and pass it to verify --checkpoint later.",
            discussion: """
                Rotated files archived away are allowed (as verify --partial). A broken log exits 2 and prints \
                nothing to keep; entries after the last signed checkpoint are left out (a running server signs \
                them within a second), so what is kept never anchors entries no signature covers.
                """)
        @Argument(help: "Log files, oldest first (default: KMS_AUDIT_LOG and its rotated files).") var files: [String] =
            []
        @Option(name: .customLong("public-key"), help: "Ed25519 public key, base64 (default: from the key store).")
        var publicKey: String?

        func run() async throws {
            let key = try await AuditCommand.publicKey(publicKey)
            let logFiles = try AuditCommand.files(files)
            // A probe printed a checkpoint for a forged, unsigned entry: an operator keeping it would
            // have anchored the forgery. Only what the chain and a signature hold is printed.
            let report = AuditVerifier.verify(files: logFiles, publicKey: key, allowMidChainStart: true)
            if let failure = report.failure {
                writeToStandardError(
                    "audit log BROKEN after \(report.entries) valid entries: \(failure); nothing to keep\n")
                throw ExitCode(2)
            }
            guard let hash = report.signedHash, report.signedThrough > 0 else {
                writeToStandardError(
                    "no entry of the audit log is covered by a signed checkpoint: nothing to keep; kms audit verify says more\n"
                )
                throw ExitCode(1)
            }
            if let tail = report.unsignedTail {
                writeToStandardError(
                    "note: entries \(tail.lowerBound)...\(tail.upperBound) follow the last signed checkpoint and are left out\n"
                )
            }
            // What the kept checkpoint anchors but no signature vouched for when written, and where a log
            // began anew, said as verify says them (a review: the checkpoint was printed without them).
            for range in report.adoptedAtRestart {
                writeToStandardError(
                    "note: entries \(range.lowerBound)...\(range.upperBound), under this checkpoint, were left unsigned by a crash and signed only by the next start (audit.unsigned-tail): their content is not tamper-evident\n"
                )
            }
            for start in report.newLogStarts { writeToStandardError("note: \(AuditCommand.newLogNote(start))\n") }
            for repair in report.repairs { writeToStandardError("note: \(AuditCommand.repairNote(repair))\n") }
            printShown(AuditVerifier.Checkpoint(seq: report.signedThrough, hash: hash).text)
        }
    }

    struct PublicKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "public-key",
            abstract: "Print the audit log's Ed25519 public key (base64), for verifying elsewhere.")

        func run() async throws {
            printShown(Base64.encode(try await AuditCommand.publicKey(nil).rawRepresentation))
        }
    }
}
