public import Foundation
import KMSCore

/// Why the store's folder or the master key's cannot be trusted (`DurableFile.untrustedFolder`), or a
/// folder on the way to either (`DurableFile.untrustedAncestor`), or nil; `kms doctor` asks the same, for
/// the service's user.
public func untrustedFolders(_ config: KMSConfiguration, user: uid_t = geteuid()) -> String? {
    if config.store == .file {
        if let refusal = DurableFile.untrustedFolder(config.keyStorePath, user: user) { return refusal }
        if let refusal = DurableFile.untrustedAncestor(of: config.keyStorePath, user: user) { return refusal }
    }
    guard config.masterKeyBase64 == nil else { return nil }
    let folder = config.masterKeyFile.deletingLastPathComponent()
    return DurableFile.untrustedFolder(folder, user: user, holding: config.masterKeyFile)
        ?? DurableFile.untrustedAncestor(of: folder, user: user)
}
