public import Crypto
public import Foundation
import KMSProtocol

/// Where a client finds its Ed25519 key (identity-v1 section 6), so that
/// `kms serve` then `kms e2e` in one folder works with no set-up:
/// 1. `KMS_CLIENT_KEY_FILE` when set (a missing file, or an empty value, is an error);
/// 2. `~/.config/kms/client.key` (what `kms client-key init` writes);
/// 3. the server's bootstrap key, `KMS_ADMIN_KEY_FILE` (default
///    `./data/admin.key`), when present, with a notice: it is `admin`.
/// Without any, the client sends protocol-v1's body.
public enum ClientKeyLookup {
    public struct Found: Sendable {
        public let key: Curve25519.Signing.PrivateKey
        public let path: String
        /// Set when the key is the server's admin key, found beside it.
        public let notice: String?
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// `KMS_CLIENT_KEY_FILE` itself is wrong (set but empty, or naming no file): a usage error, where
        /// a file that cannot be read or is not a key is a failure of the file.
        public var isSetting = false
    }

    /// `~/.config/kms/client.key`.
    public static var defaultPath: String { defaultPath(environment: ProcessInfo.processInfo.environment) }

    /// `~/.config/kms/client.key` under `environment`'s `HOME` (a test passes its own).
    static func defaultPath(environment: [String: String]) -> String {
        // `$HOME` first, as shells and other tools read `~`; the user database only without it.
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        return (home ?? FileManager.default.homeDirectoryForCurrentUser)
            .appendingPathComponent(".config/kms/client.key").path
    }

    /// `user`: whose key files to take (a test passes another).
    public static func find(
        environment: [String: String] = ProcessInfo.processInfo.environment, user: uid_t = geteuid()
    ) throws(Failure) -> Found? {
        guard let (path, named, notice) = try locate(environment: environment) else { return nil }
        // The key, its owner and its mode from one descriptor: a second look at the name could be answered by
        // another file (a review: one deleted or swapped right after its read went unchecked).
        let (key, info) = try readWithStatus(path)
        var warnings: [String] = []
        // identity-v1 section 6: a key file looser than 0600 is warned about (the file a link leads to:
        // a link's own mode, 0777, said nothing: a review finding).
        if Int(info.st_mode) & 0o077 != 0 {
            let mode = Int(info.st_mode) & 0o777
            warnings.append("\(path) is readable by other users (mode \(String(mode, radix: 8))): chmod 600 it")
        }
        // A key another user owns is theirs: a `./data/admin.key` in a folder they control (a review ran `kms`
        // in one and it signed with their key, with only a note), or a `~/.config/kms` they could write. Not
        // taken unless named on purpose (`KMS_CLIENT_KEY_FILE`); root is told, not refused (an operator may
        // run the CLI as root beside a store the service's user owns).
        if info.st_uid != user, info.st_uid != 0 {
            let owned = "\(path) belongs to uid \(info.st_uid), not this user"
            if !named, user != 0 {
                throw Failure(
                    description:
                        "\(owned): not used, since another user may have put it there; name it in KMS_CLIENT_KEY_FILE to use it on purpose"
                )
            }
            warnings.append("\(owned): whoever owns it can replace it")
        }
        let notices = [notice].compactMap { $0 } + warnings
        return Found(key: key, path: path, notice: notices.isEmpty ? nil : notices.joined(separator: "; "))
    }

    /// The key file to read, whether it was named in `KMS_CLIENT_KEY_FILE`, and the notice its use needs.
    private static func locate(environment: [String: String]) throws(Failure) -> (
        path: String, named: Bool, notice: String?
    )? {
        if let path = environment["KMS_CLIENT_KEY_FILE"] {
            // Set but empty (`KMS_CLIENT_KEY_FILE=$(…)` where that failed) is not unset: the search would go
            // on and may sign with another key, the server's admin key beside it included (a probe).
            guard !path.isEmpty else {
                throw Failure(
                    description:
                        "KMS_CLIENT_KEY_FILE is set but empty: name the client's key file, or unset it to look in \(defaultPath(environment: environment)) and then for the server's admin key",
                    isSetting: true)
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw Failure(description: "KMS_CLIENT_KEY_FILE names \(path), which does not exist", isSetting: true)
            }
            return (path, true, nil)
        }
        let own = defaultPath(environment: environment)
        if FileManager.default.fileExists(atPath: own) { return (own, false, nil) }
        // A link to nothing on the way is not "no key": the search would go on and sign with the server's
        // admin key beside it (a review: a link into a volume not mounted did). A key file that cannot be read:
        // exit status 1, as README says.
        if let link = LinkToNothing.on(own) {
            throw Failure(
                description:
                    "the client key \(own) cannot be read: \(LinkToNothing.reason(link)); mount or fix it, or name the key to use in KMS_CLIENT_KEY_FILE (nothing was sent)"
            )
        }
        let admin = adminPath(environment)
        if FileManager.default.fileExists(atPath: admin) {
            return (admin, false, "using the server's admin key \(admin) (no KMS_CLIENT_KEY_FILE or \(own))")
        }
        return nil
    }

    /// Where `find` looked, in its order, for a message when it found
    /// nothing (`KMS_CLIENT_KEY_FILE` is named only when unset: a set one
    /// that is missing is an error of its own).
    public static func searched(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        "KMS_CLIENT_KEY_FILE is unset, and neither \(defaultPath(environment: environment)) nor the server's admin key \(adminPath(environment)) exists"
    }

    private static func adminPath(_ environment: [String: String]) -> String {
        environment["KMS_ADMIN_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data/admin.key"
    }

    /// Reads one key file (the 48-byte PKCS#8 form only).
    public static func read(_ path: String) throws(Failure) -> Curve25519.Signing.PrivateKey {
        try readWithStatus(path).key
    }

    /// `read`, with the status of the file the bytes came from (owner, mode), judged on its descriptor.
    static func readWithStatus(_ path: String) throws(Failure) -> (key: Curve25519.Signing.PrivateKey, status: stat) {
        // Non-blocking: a pipe planted at the name would hold `open`; only a regular file of a few bytes is read.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Failure(description: "cannot read the client key file \(path)") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= 4096 else {
            throw Failure(description: "\(path) is not a client key file (a regular file of at most 4 KiB)")
        }
        // Blocking again for the read (a FUSE file system may honour the flag and answer EAGAIN).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        let data: Data
        do {
            // At most a byte past the size it had: a file that grew since is not ours to read whole.
            data =
                try FileHandle(fileDescriptor: fd, closeOnDealloc: false).read(upToCount: Int(info.st_size) + 1)
                ?? Data()
        } catch {
            throw Failure(description: "cannot read the client key file \(path)")
        }
        do {
            return (try ClientKeyFile.parse(String(decoding: data, as: UTF8.self)), info)
        } catch {
            throw Failure(
                description: "\(path) is not an Ed25519 key file (PEM PRIVATE KEY, the 48-byte PKCS#8 form of RFC 8410)"
            )
        }
    }
}
