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
    public static var defaultPath: String {
        // `$HOME` first, as shells and other tools read `~`; the user database only without it.
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        return (home ?? FileManager.default.homeDirectoryForCurrentUser)
            .appendingPathComponent(".config/kms/client.key").path
    }

    /// `user`: whose key files to take (a test passes another).
    public static func find(
        environment: [String: String] = ProcessInfo.processInfo.environment, user: uid_t = geteuid()
    ) throws(Failure) -> Found? {
        guard let found = try locate(environment: environment) else { return nil }
        // identity-v1 section 6: a key file looser than 0600 is warned about. `stat` follows a symbolic
        // link to the file it names: a link's own mode (0777) said nothing (a review finding).
        var info = stat()
        guard stat(found.path, &info) == 0 else { return found }
        var warnings: [String] = []
        if Int(info.st_mode) & 0o077 != 0 {
            let mode = Int(info.st_mode) & 0o777
            warnings.append("\(found.path) is readable by other users (mode \(String(mode, radix: 8))): chmod 600 it")
        }
        // A key another user owns is theirs: a `./data/admin.key` in a folder they control (a review ran `kms`
        // in one and it signed with their key, with only a note), or a `~/.config/kms` they could write. Not
        // taken unless named on purpose (`KMS_CLIENT_KEY_FILE`); root is told, not refused (an operator may
        // run the CLI as root beside a store the service's user owns).
        if info.st_uid != user, info.st_uid != 0 {
            let owned = "\(found.path) belongs to uid \(info.st_uid), not this user"
            if found.path != environment["KMS_CLIENT_KEY_FILE"], user != 0 {
                throw Failure(
                    description:
                        "\(owned): not used, since another user may have put it there; name it in KMS_CLIENT_KEY_FILE to use it on purpose"
                )
            }
            warnings.append("\(owned): whoever owns it can replace it")
        }
        guard !warnings.isEmpty else { return found }
        return Found(
            key: found.key, path: found.path,
            notice: ([found.notice].compactMap { $0 } + warnings).joined(separator: "; "))
    }

    private static func locate(environment: [String: String]) throws(Failure) -> Found? {
        if let path = environment["KMS_CLIENT_KEY_FILE"] {
            // Set but empty (`KMS_CLIENT_KEY_FILE=$(…)` where that failed) is not unset: the search would go
            // on and may sign with another key, the server's admin key beside it included (a probe).
            guard !path.isEmpty else {
                throw Failure(
                    description:
                        "KMS_CLIENT_KEY_FILE is set but empty: name the client's key file, or unset it to look in \(defaultPath) and then for the server's admin key",
                    isSetting: true)
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw Failure(description: "KMS_CLIENT_KEY_FILE names \(path), which does not exist", isSetting: true)
            }
            return Found(key: try read(path), path: path, notice: nil)
        }
        if FileManager.default.fileExists(atPath: defaultPath) {
            return Found(key: try read(defaultPath), path: defaultPath, notice: nil)
        }
        let admin = adminPath(environment)
        if FileManager.default.fileExists(atPath: admin) {
            return Found(
                key: try read(admin), path: admin,
                notice: "using the server's admin key \(admin) (no KMS_CLIENT_KEY_FILE or \(defaultPath))")
        }
        return nil
    }

    /// Where `find` looked, in its order, for a message when it found
    /// nothing (`KMS_CLIENT_KEY_FILE` is named only when unset: a set one
    /// that is missing is an error of its own).
    public static func searched(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        "KMS_CLIENT_KEY_FILE is unset, and neither \(defaultPath) nor the server's admin key \(adminPath(environment)) exists"
    }

    private static func adminPath(_ environment: [String: String]) -> String {
        environment["KMS_ADMIN_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data/admin.key"
    }

    /// Reads one key file (the 48-byte PKCS#8 form only).
    public static func read(_ path: String) throws(Failure) -> Curve25519.Signing.PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read the client key file \(path)")
        }
        do {
            return try ClientKeyFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw Failure(
                description: "\(path) is not an Ed25519 key file (PEM PRIVATE KEY, the 48-byte PKCS#8 form of RFC 8410)"
            )
        }
    }
}
