import Crypto
public import Foundation
import KMSProtocol
public import Logging

/// identity-v1 section 6: the first start enrols client `admin`, whose key
/// sits in `KMS_ADMIN_KEY_FILE` on the server host, so `kms serve` then
/// `kms e2e` in one folder works with no set-up.
public enum AdminBootstrap {
    /// When the registry holds no record: takes the key in `keyFile` (an
    /// invalid file stops start-up), or generates one and writes it durably
    /// (0600, never over an existing file); then enrols `admin` with every
    /// permission, exclusively across instances. A losing instance removes the
    /// file it wrote, unless the winner enrolled the key in it: instances
    /// sharing one key file (one volume, one PostgreSQL database) that start
    /// together read the file one of them wrote, and the writer may be the
    /// one that loses (a review found the only admin enrolled with a key
    /// whose file the loser had just removed). Returns the enrolled record,
    /// or nil when there was nothing to do.
    ///
    /// `intent` runs once the registry is found empty, before anything is
    /// enrolled, and may refuse by throwing (the server writes a durable
    /// `client.bootstrap` intent there: a full-permission client must not be
    /// made without a trace, and the entry made after it was best effort, a
    /// review found); `lost` runs when another instance enrolled first.
    @discardableResult
    public static func run(
        registry: ClientRegistry, keyFile: URL, logger: Logger, intent: () async throws -> Void = {},
        lost: () async -> Void = {}
    ) async throws -> Enrolled? {
        guard try await registry.isEmpty() else { return nil }
        try await intent()
        let (key, source) = try loadOrCreate(keyFile, logger: logger)
        let publicKey = key.publicKey.rawRepresentation
        guard let record = try await registry.bootstrapAdmin(publicKey: publicKey) else {
            if source == .generated, await isUnenrolled(publicKey, registry) {
                try? FileManager.default.removeItem(at: keyFile)
            }
            await lost()
            return nil
        }
        let metadata: Logger.Metadata = [
            "fingerprint": "\(record.fingerprint)", "keyFile": "\(keyFile.path)", "keySource": "\(source.rawValue)",
        ]
        if source == .existingFile {
            // Said apart from a key this start made (a review: a folder that ships data/admin.key, a cloned
            // repository, gives whoever wrote it admin, and the log read the same either way).
            logger.warning(
                "enrolled client admin with every permission, with the key already in KMS_ADMIN_KEY_FILE (this server did not make it): whoever wrote that file holds admin; if that was not you, enrol your own device and revoke admin now",
                metadata: metadata)
        } else {
            logger.notice(
                "enrolled client admin with every permission; its key is on this host: enrol your own device, then revoke admin",
                metadata: metadata)
        }
        return Enrolled(record: record, keySource: source)
    }

    /// Where the enrolled key came from (the `client.bootstrap` entry's `keySource`).
    public enum KeySource: String, Sendable {
        /// Made by this start.
        case generated
        /// Found in the file: whoever wrote it holds admin.
        case existingFile = "existing-file"
        /// Written a moment ago by another instance starting beside this one (one volume, one database).
        case peerInstance = "peer-instance"
    }

    /// The client enrolled, and where its key came from.
    public struct Enrolled: Sendable {
        public let record: ClientRecord
        public let keySource: KeySource
    }

    /// Whether no record holds `publicKey`; a lookup that fails says no, so
    /// the file is kept: a stray key file is better than the admin's key lost.
    static func isUnenrolled(_ publicKey: Data, _ registry: ClientRegistry) async -> Bool {
        do {
            return try await registry.store.client(fingerprint: ClientAuth.fingerprint(rawPublicKey: publicKey)) == nil
        } catch {
            return false
        }
    }

    /// The key in `url`, or a new one written there.
    static func loadOrCreate(_ url: URL, logger: Logger) throws -> (Curve25519.Signing.PrivateKey, KeySource) {
        if let key = try readForBootstrap(url, logger: logger) {
            DurableFile.removeStaleTemporaries(of: url)
            return (key, .existingFile)
        }
        let key = Curve25519.Signing.PrivateKey()
        do {
            try DurableFile.prepareFolder(url.deletingLastPathComponent())
            guard try DurableFile.createExclusive(Data(ClientKeyFile.pem(key).utf8), at: url) else {
                // Another instance wrote it a moment ago: use that one.
                guard let other = try readForBootstrap(url, logger: logger) else {
                    throw StartupFailure(description: "KMS_ADMIN_KEY_FILE \(url.path) vanished while starting")
                }
                return (other, .peerInstance)
            }
        } catch let failure as DurableFile.Failure {
            throw StartupFailure(description: "KMS_ADMIN_KEY_FILE: \(failure.description)")
        }
        return (key, .generated)
    }

    /// The key a first start would enrol with every permission, or nil when there is no file. Refused
    /// (exit 78) when anyone but this user could have it: a file another user owns (neither this one nor
    /// root), a file that group or others may read (identity-v1 section 6 only warns about those; the
    /// key is admin's), or a link another user owns. Owner and mode are those of the file the bytes were
    /// read from, not a second look at the name (a review planted a key owned by another uid, linked into
    /// the folder before the first start, and was admin; the diff review found a link swapped between a
    /// read and a `stat` would pass).
    static func readForBootstrap(_ url: URL, logger: Logger, user: uid_t = geteuid()) throws
        -> Curve25519.Signing.PrivateKey?
    {
        let found: (data: Data, status: stat)?
        do {
            found = try DurableFile.readWithStatus(url)
        } catch {
            throw StartupFailure(description: "KMS_ADMIN_KEY_FILE: \(error.description)")
        }
        guard let (data, status) = found else { return nil }
        func refuse(_ why: String, _ fix: String) -> StartupFailure {
            StartupFailure(
                description:
                    "KMS_ADMIN_KEY_FILE \(url.path) \(why): the key it holds would be enrolled as admin with every permission; \(fix)",
                isConfiguration: true)
        }
        if let owner = DurableFile.foreignOwner(status, user: user) {
            throw refuse(
                "belongs to uid \(owner), neither this user nor root, who holds that key",
                "if you put it there, chown it to this user, else delete it and a new key is made")
        }
        if status.st_mode & 0o077 != 0 {
            throw refuse(
                "is mode \(String(status.st_mode & 0o777, radix: 8)), readable by others",
                "if you put it there, chmod 600 it, else delete it and a new key is made")
        }
        var link = stat()
        if lstat(url.path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK,
            let owner = DurableFile.foreignOwner(link, user: user)
        {
            throw refuse(
                "is a link that uid \(owner) owns, neither this user nor root, who may point it anywhere",
                "replace the link with the file itself")
        }
        return try parse(data, url)
    }

    /// Reads a client key file (the client's lookup uses it too); nil when absent.
    public static func read(_ url: URL, logger: Logger) throws -> Curve25519.Signing.PrivateKey? {
        let contents: Data?
        do {
            contents = try DurableFile.readIfPresent(url)
        } catch {
            throw StartupFailure(description: "client key file: \(error.description)")
        }
        guard let data = contents else { return nil }
        if let mode = DurableFile.mode(of: url), mode & 0o077 != 0 {
            logger.warning(
                "a client key file is readable by others; chmod 600 it",
                metadata: ["file": "\(url.path)", "mode": "\(String(mode, radix: 8))"])
        }
        return try parse(data, url)
    }

    static func parse(_ data: Data, _ url: URL) throws -> Curve25519.Signing.PrivateKey {
        do {
            return try ClientKeyFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw StartupFailure(
                description:
                    "\(url.path) is not an Ed25519 key file (PEM PRIVATE KEY, the 48-byte PKCS#8 form of RFC 8410)")
        }
    }
}
