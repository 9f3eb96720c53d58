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

/// What lets another user swap the store's folder, the master key's or the audit log's for one of their own from above
/// (`DurableFile.untrustedAncestor`): warned about at start and a failure of `kms doctor`, not a refusal,
/// since deployments that worked before sit under such folders (a Kubernetes `emptyDir` is 0777 without
/// the sticky bit; `sudo kms serve` in a user's checkout): the diff review.
public func untrustedAncestors(_ config: KMSConfiguration, user: uid_t = geteuid()) -> [String] {
    var folders: [(URL, judgingGroups: Bool)] = []
    if config.store == .file { folders.append((config.keyStorePath, true)) }
    if config.masterKeyBase64 == nil { folders.append((config.masterKeyFile.deletingLastPathComponent(), true)) }
    // The audit log's way too (a review): whoever can swap its folder can take the log away, which `kms audit
    // verify` then finds, but only once someone runs it. Not by its groups (`untrustedWay`).
    folders.append((config.auditLog.deletingLastPathComponent(), false))
    // One line per folder found: the same folder above both is said once (the second diff review).
    var seen = Set<String>()
    return folders.compactMap { DurableFile.untrustedWay(to: $0.0, user: user, judgingGroups: $0.judgingGroups) }
        .filter { seen.insert($0.path).inserted }.map(\.description)
}
