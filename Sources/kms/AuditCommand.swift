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
        if !given.isEmpty { return given.map { URL(fileURLWithPath: $0) } }
        let files = AuditFiles.chain(for: try KMSConfiguration.forCommand().auditLog)
        guard !files.isEmpty else { throw ValidationError("no audit log found at KMS_AUDIT_LOG; name the files") }
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
                "Exit 0 when the only unsigned entries follow the last checkpoint and began within the last minute (a running server's last second)."
            ))
        var allowUnsignedTail = false

        /// How old an unsigned tail `--allow-unsigned-tail` exempts may be: a
        /// running server signs its tail within a second (a disk that stalls
        /// longer refuses audited calls), so an older one was left by a crash
        /// or written while the server was stopped. Its time is the tail's own,
        /// which whoever wrote it chose: this bounds when a forged tail
        /// passes, it does not authenticate it (docs/audit.md).
        static let liveTailAge: TimeInterval = 60

        func run() async throws {
            let key = try await AuditCommand.publicKey(publicKey)
            var mark: AuditVerifier.Checkpoint?
            if let checkpoint {
                guard let parsed = AuditVerifier.Checkpoint(parsing: checkpoint) else {
                    throw ValidationError("--checkpoint must be SEQ:HASH as `kms audit checkpoint` prints it")
                }
                mark = parsed
            }
            let logFiles = try AuditCommand.files(files)
            for file in logFiles where !FileManager.default.isReadableFile(atPath: file.path) {
                // A typo is not tampering: a usage error (64), where a broken log is 2.
                throw ValidationError("\(file.path) cannot be read (no such file, or no permission)")
            }
            let report = AuditVerifier.verify(
                files: logFiles, publicKey: key, checkpoint: mark, allowMidChainStart: partial)
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
            printShown(
                "audit log OK: \(report.entries) entries, seq \(report.first ?? 0)...\(report.last ?? 0), "
                    + "\(report.checkpoints) signed checkpoints; chain and signatures hold")
            if let unsigned = report.unsignedSummary {
                let onlyLiveTail = report.adoptedAtRestart.isEmpty && report.checkpoints > 0
                printShown("NOT TAMPER-EVIDENT: \(unsigned)")
                guard allowUnsignedTail, onlyLiveTail else { throw ExitCode(1) }
                guard let began = report.firstUnsignedDate, abs(began.timeIntervalSinceNow) <= Self.liveTailAge
                else {
                    printShown(
                        "--allow-unsigned-tail exempts only a tail that began within the last \(Int(Self.liveTailAge)) s, as a running server's does; this one did not (or its time is unreadable)"
                    )
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the last entry's SEQ:HASH; keep it elsewhere and pass it to verify --checkpoint later.")
        @Argument(help: "Log files, oldest first (default: KMS_AUDIT_LOG and its rotated files).") var files: [String] =
            []

        func run() async throws {
            for file in try AuditCommand.files(files).reversed() {
                guard let data = FileManager.default.contents(atPath: file.path) else {
                    throw ValidationError("\(file.path) cannot be read")
                }
                guard data.isEmpty || data.last == 0x0A else {
                    throw ValidationError(
                        "\(file.lastPathComponent): the last line is incomplete; run kms audit verify")
                }
                // The last entry (a signed checkpoint line after it names the same seq). A line that is
                // not an entry is an error, not a reason to look further back: that would print an
                // older checkpoint and hide whatever follows it.
                for line in AuditLines.split(data).reversed() {
                    guard let line, let parsed = AuditChain.parse(line) else {
                        throw ValidationError(
                            "\(file.lastPathComponent) ends in a line that is not an audit entry; run kms audit verify")
                    }
                    if parsed.kind != .checkpoint {
                        printShown(AuditVerifier.Checkpoint(seq: parsed.seq, hash: AuditChain.hash(line)).text)
                        return
                    }
                }
            }
            throw ValidationError("the audit log has no entries")
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
