public import Foundation
import KMSCore

/// Why the store's folder or the master key's cannot be trusted (`DurableFile.untrustedFolder`), or nil;
/// `kms doctor` asks the same, for the service's user.
public func untrustedFolders(_ config: KMSConfiguration, user: uid_t = geteuid()) -> String? {
    if config.store == .file, let refusal = DurableFile.untrustedFolder(config.keyStorePath, user: user) {
        return refusal
    }
    guard config.masterKeyBase64 == nil else { return nil }
    return DurableFile.untrustedFolder(
        config.masterKeyFile.deletingLastPathComponent(), user: user, holding: config.masterKeyFile)
}
