public import Foundation
import KMSProtocol
public import Logging

/// Finds the master key: `KMS_MASTER_KEY` (b64) wins; otherwise the key file,
/// created with 32 CSPRNG bytes (mode 0600) when missing.
public enum MasterKeyLoader {
    /// `tidy: false` for the commands that only read (`loadExisting`): they leave the folder as it is.
    /// `create: false`: a missing file is refused, never made (what those commands checked a moment before
    /// could be gone by now; a review).
    public static func load(
        base64: String?, file: URL, logger: Logger, tidy: Bool = true, create: Bool = true
    ) throws(StartupFailure) -> MasterKey {
        let (key, created) = try loadNoting(base64: base64, file: file, logger: logger, tidy: tidy, create: create)
        if created { noteCreated(file, logger: logger) }
        return key
    }

    /// The notice of a master key made now: back it up.
    public static func noteCreated(_ file: URL, logger: Logger) {
        logger.notice(
            "created a new master key; back it up apart from the key store", metadata: ["file": "\(file.path)"])
    }

    /// `load`, saying whether the key file was made now, without the notice: `kms serve` gives it, then
    /// checks that the store holds nothing wrapped by another key, and names a useless new key as such (a
    /// review: a store whose master key file was moved away got a new one, announced as the one to back
    /// up and left unexplained after the start failed).
    public static func loadNoting(base64: String?, file: URL, logger: Logger, tidy: Bool = true, create: Bool = true)
        throws(StartupFailure) -> (key: MasterKey, created: Bool)
    {
        if let base64, !base64.isEmpty {
            guard let bytes = Base64.decodeStrict(base64.trimmingCharacters(in: .whitespacesAndNewlines)),
                bytes.count == 32
            else {
                throw StartupFailure(
                    description: "KMS_MASTER_KEY must be the standard base64 of exactly 32 bytes", isConfiguration: true
                )
            }
            return (try make(bytes), false)
        }
        if FileManager.default.fileExists(atPath: file.path) {
            if tidy { DurableFile.removeStaleTemporaries(of: file) }
            return (try read(file, logger: logger), false)
        }
        // A key this user may not reach is not a missing one (an operator's review: a key under a root-only
        // /etc/kms was reported as a folder not writable, an invitation to open the folder, or, with a
        // writable one, a new key made beside the unreadable one).
        if DurableFile.isUnreachable(file) {
            throw StartupFailure(
                description:
                    "KMS_MASTER_KEY_FILE \(file.path): permission denied: this user cannot reach it (under systemd, leave KMS_MASTER_KEY_FILE unset and pass the key with LoadCredential=master.key:…, docs/deploy.md)",
                isConfiguration: true)
        }
        guard create else {
            throw StartupFailure(
                description: "KMS_MASTER_KEY_FILE \(file.path): no master key there (this command never makes one)",
                isConfiguration: true)
        }
        do {
            try DurableFile.prepareFolder(file.deletingLastPathComponent())
            let bytes = MasterKeyLoader.randomBytes()
            guard try DurableFile.createExclusive(Data(Base64.encode(bytes).utf8 + [0x0A]), at: file) else {
                // Another process created it first: use that one.
                return (try read(file, logger: logger), false)
            }
            return (try make(bytes), true)
        } catch let error as StartupFailure {
            throw error
        } catch {
            throw StartupFailure(description: "KMS_MASTER_KEY_FILE \(file.path): \(error)")
        }
    }

    /// The configured master key, never a new one (`kms doctor`, `kms backup`):
    /// nil when there is none.
    public static func loadExisting(base64: String?, file: URL) throws(StartupFailure) -> MasterKey? {
        guard
            (base64.map { !$0.isEmpty } ?? false) || FileManager.default.fileExists(atPath: file.path)
                || DurableFile.isUnreachable(file)
        else {
            return nil
        }
        var logger = Logger(label: "kms")
        logger.logLevel = .critical
        return try load(base64: base64, file: file, logger: logger, tidy: false, create: false)
    }

    /// A looser mode than 0600 is warned about at start-up, as api-v1's
    /// configuration section fixes (a refusal, as ssh refuses a loose private
    /// key, would stop a deployment that follows the contract: a key file
    /// written under umask 022, a container secret mounted 0444). `kms doctor`
    /// fails on it. Only a regular file of a few bytes is read.
    private static func read(_ file: URL, logger: Logger) throws(StartupFailure) -> MasterKey {
        // Mode and owner as read from the descriptor the key came from, not a second look at the name.
        let found: (data: Data, status: stat)?
        do {
            found = try DurableFile.readWithStatus(file, maxBytes: 4096)
        } catch {
            // A file this user may not read (0600 another user's), or that is not a key file at all (a folder, a
            // pipe), is the setting's to fix, not the disk's.
            throw StartupFailure(
                description: "KMS_MASTER_KEY_FILE: \(error.description)",
                isConfiguration: error.damaged || access(file.path, R_OK) != 0)
        }
        guard let (contents, status) = found else {
            throw StartupFailure(description: "KMS_MASTER_KEY_FILE \(file.path) cannot be read")
        }
        do {
            let mode = status.st_mode & 0o777
            if mode & 0o007 != 0 {
                logger.warning(
                    "the master key file is open to every user of this machine: run chmod 600 on it, and treat the key as exposed if others could log in here",
                    metadata: ["file": "\(file.path)", "mode": "\(String(mode, radix: 8))"])
            } else if DurableFile.isLooseSecret(mode: mode, of: file) {
                logger.warning(
                    "the master key file is open to its group; run chmod 600 on it unless that group is meant to read it",
                    metadata: ["file": "\(file.path)", "mode": "\(String(mode, radix: 8))"])
            }
        }
        // Not refused: a deployment may have its administrator own the key and the service read it through
        // its group. But that user can read and replace it whatever the mode (a review: one planted before
        // the first start, owned by another uid, was used without a word).
        if let owner = DurableFile.foreignOwner(status) {
            logger.warning(
                "the master key file belongs to another user, neither this one nor root: that user can read it and replace it; chown it to this user or root unless that user is meant to hold it",
                metadata: ["file": "\(file.path)", "owner": "\(owner)"])
        }
        if contents.count == 32, Base64.decodeStrict(String(decoding: contents, as: UTF8.self)) == nil {
            return try make(contents)
        }
        let text = String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Base64.decodeStrict(text), bytes.count == 32 else {
            throw StartupFailure(
                description: "KMS_MASTER_KEY_FILE \(file.path) must hold 32 bytes, as base64 text or raw")
        }
        return try make(bytes)
    }

    private static func make(_ bytes: Data) throws(StartupFailure) -> MasterKey {
        do {
            return try MasterKey(bytes: bytes)
        } catch {
            throw StartupFailure(description: "the master key must be exactly 32 bytes")
        }
    }

    static func randomBytes() -> Data {
        SymmetricKeyBytes.random(count: 32)
    }
}
