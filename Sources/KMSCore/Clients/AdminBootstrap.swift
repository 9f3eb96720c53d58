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
        let (key, wroteFile) = try loadOrCreate(keyFile, logger: logger)
        let publicKey = key.publicKey.rawRepresentation
        guard let record = try await registry.bootstrapAdmin(publicKey: publicKey) else {
            if wroteFile, await isUnenrolled(publicKey, registry) { try? FileManager.default.removeItem(at: keyFile) }
            await lost()
            return nil
        }
        let metadata: Logger.Metadata = ["fingerprint": "\(record.fingerprint)", "keyFile": "\(keyFile.path)"]
        if wroteFile {
            logger.notice(
                "enrolled client admin with every permission; its key is on this host: enrol your own device, then revoke admin",
                metadata: metadata)
        } else {
            // Said apart from a key this start made (a review: a folder that ships data/admin.key, a cloned
            // repository, gives whoever wrote it admin, and the log read the same either way).
            logger.warning(
                "enrolled client admin with every permission, with the key already in KMS_ADMIN_KEY_FILE (this server did not make it): whoever wrote that file holds admin; if that was not you, enrol your own device and revoke admin now",
                metadata: metadata)
        }
        return Enrolled(record: record, generated: wroteFile)
    }

    /// The client enrolled, and whether its key was made by this start (false: taken from the file).
    public struct Enrolled: Sendable {
        public let record: ClientRecord
        public let generated: Bool
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
    static func loadOrCreate(_ url: URL, logger: Logger) throws -> (Curve25519.Signing.PrivateKey, Bool) {
        if let key = try read(url, logger: logger) {
            try refuseForeign(url)
            DurableFile.removeStaleTemporaries(of: url)
            return (key, false)
        }
        let key = Curve25519.Signing.PrivateKey()
        do {
            try DurableFile.prepareFolder(url.deletingLastPathComponent())
            guard try DurableFile.createExclusive(Data(ClientKeyFile.pem(key).utf8), at: url) else {
                // Another instance wrote it a moment ago: use that one.
                guard let other = try read(url, logger: logger) else {
                    throw StartupFailure(description: "KMS_ADMIN_KEY_FILE \(url.path) vanished while starting")
                }
                try refuseForeign(url)
                return (other, false)
            }
        } catch let failure as DurableFile.Failure {
            throw StartupFailure(description: "KMS_ADMIN_KEY_FILE: \(failure.description)")
        }
        return (key, true)
    }

    /// A key file another user owns (neither this one nor root) is not enrolled as admin: that user has
    /// the key, whatever the file's mode (a review planted one, owned by another uid and linked into a
    /// folder before the first start, and was admin).
    static func refuseForeign(_ url: URL) throws {
        guard let owner = DurableFile.foreignOwner(of: url) else { return }
        throw StartupFailure(
            description:
                "KMS_ADMIN_KEY_FILE \(url.path) belongs to uid \(owner), neither this user nor root: that user holds the key it would enrol as admin with every permission; if you put it there, chown it to this user, else delete it and a new key is made",
            isConfiguration: true)
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
        do {
            return try ClientKeyFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw StartupFailure(
                description:
                    "\(url.path) is not an Ed25519 key file (PEM PRIVATE KEY, the 48-byte PKCS#8 form of RFC 8410)")
        }
    }
}
