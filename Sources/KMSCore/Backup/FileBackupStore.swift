public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// lifecycle-v1 section 6 on the file store (`KEY_STORE_PATH`). A backup
/// reads each file whole (every write is a rename, so a file is never seen
/// half written) and drops aliases of keys it did not read. A restore is
/// staged in `KEY_STORE_PATH/.restore-<random>/` through the store types
/// themselves, read back and verified there, and only then renamed in.
public enum FileBackupStore {
    static let secretSuffix = ".secret.json"

    /// Everything a backup holds.
    public static func read(folder: URL) async throws(KMSError) -> BackupContents {
        guard FileManager.default.fileExists(atPath: folder.path) else {
            throw KMSError(.invalidRequest, "no key store at \(folder.path) (KEY_STORE_PATH)")
        }
        let keyStore = try FileKeyStore(
            folder: folder, lifecycle: KeyLifecycle(graceMs: 0), clock: SystemClock(), readingOnly: true)
        var contents = BackupContents()
        var after: String?
        while true {
            let page = try await keyStore.list(after: after, limit: 500)
            contents.keys += page
            guard page.count == 500, let last = page.last else { break }
            after = last.keyId
        }
        let keyIds = Set(contents.keys.map(\.keyId))
        var cursor: String?
        while true {
            let page = try await keyStore.listAliases(after: cursor, limit: 500, keyId: nil)
            contents.aliases += page.filter { keyIds.contains($0.keyId) }
            guard page.count == 500, let last = page.last else { break }
            cursor = last.alias
        }
        contents.keys = contents.keys.map { key in
            key.withAliases(contents.aliases.filter { $0.keyId == key.keyId }.map(\.alias))
        }
        let secrets = FileSecretBlobStore(folder: folder)
        for name in try secretNames(in: folder) {
            if let wrapped = try await secrets.blob(named: name) {
                contents.secrets.append(BackupContents.Secret(name: name, wrapped: wrapped))
            }
        }
        let clients = try LocalClientStore(folder: folder)
        var clientCursor: String?
        while true {
            let page = try await clients.list(after: clientCursor, limit: 500)
            contents.clients += page.map { BackupContents.Client(clientId: $0.clientId, sealed: $0.sealed) }
            guard page.count == 500, let last = page.last else { break }
            clientCursor = last.clientId
        }
        return contents
    }

    /// Restores `contents` into `folder`, which must never have been
    /// started (missing or empty), or hold only a first start's server
    /// secrets and bootstrap `admin` when `replaceServerSecrets`.
    /// `lifecycle`: the deployment's grace period, so that each key file
    /// states its versions' status as the server would write it.
    /// `stopRequested` (a signal, in `kms restore`) is asked while the restore
    /// stages and once more before it moves anything into place: true then
    /// stops it with the store as it was and no staging folder left. Once
    /// files move it is not asked again, since stopping there would leave
    /// the store part old, part restored.
    public static func restore(
        _ contents: BackupContents, into folder: URL, masterKey: MasterKey, replaceServerSecrets: Bool,
        lifecycle: KeyLifecycle, stopRequested: () -> Bool = { false }
    ) async throws(KMSError) {
        func stopIfRequested() throws(KMSError) {
            guard stopRequested() else { return }
            throw KMSError(
                .invalidRequest, "stopped by a signal before any file was moved into place: the store is as it was")
        }
        // A set-aside folder first (a restore stopped during its renames), then the target itself; a
        // staging folder is removed only from a store that is still as it was before that restore.
        try refuseInterruptedRenames(in: folder)
        let replaced = try checkTarget(folder, replaceServerSecrets: replaceServerSecrets, masterKey: masterKey)
        try removeInterruptedStaging(in: folder)
        do {
            try DurableFile.prepareFolder(folder)
        } catch {
            throw KMSError.storageUnavailable("cannot prepare \(folder.path): \(error.description)")
        }
        let staging = folder.appendingPathComponent(stagingPrefix + UUID().uuidString.prefix(8).lowercased())
        defer { try? FileManager.default.removeItem(at: staging) }
        let keys = try FileKeyStore(folder: staging, lifecycle: lifecycle, clock: SystemClock())
        for key in contents.keys {
            try stopIfRequested()
            try await keys.create(key.withAliases([]))
        }
        for alias in contents.aliases { try await keys.createAlias(alias, copying: true) }
        let secrets = FileSecretBlobStore(folder: staging)
        for secret in contents.secrets { _ = try await secrets.createBlob(named: secret.name, wrapped: secret.wrapped) }
        let clients = try LocalClientStore(folder: staging)
        for client in contents.clients {
            _ = try await clients.add(try BackupRestore.storedClient(client, masterKey: masterKey), onlyIfEmpty: false)
        }
        try await contents.verify(restored: try await read(folder: staging), masterKey: masterKey)
        try stopIfRequested()

        // Verified: set aside what a first start made, then rename each staged entry in. Any
        // failure puts everything back as it was (a failed restore writes nothing).
        let aside = folder.appendingPathComponent(asidePrefix + UUID().uuidString.prefix(8).lowercased())
        var undo: [() -> Void] = []
        func rollBack() { for step in undo.reversed() { step() } }
        func move(_ from: URL, _ to: URL) throws(KMSError) {
            guard rename(from.path, to.path) == 0 else {
                let code = errno
                rollBack()
                throw KMSError.storageUnavailable("cannot move \(from.lastPathComponent) into place: errno \(code)")
            }
            undo.append { _ = rename(to.path, from.path) }
        }
        // Made even when nothing is set aside: while it exists, a restore stopped during the renames
        // is known for what it is (serve refuses the store, a new restore says to empty it).
        guard mkdir(aside.path, 0o700) == 0 else {
            throw KMSError.storageUnavailable("cannot make \(aside.lastPathComponent): errno \(errno)")
        }
        undo.append { _ = rmdir(aside.path) }
        do {
            try DurableFile.syncFolder(folder.path)
        } catch {
            rollBack()
            throw KMSError.storageUnavailable("cannot sync \(folder.path): \(error.description)")
        }
        // Listed before anything moves: a failure here must leave the store as it was.
        let entries: [String]
        do {
            entries = try DurableFile.storedNames(in: staging)
        } catch {
            rollBack()
            throw error
        }
        for name in replaced { try move(folder.appendingPathComponent(name), aside.appendingPathComponent(name)) }
        for name in entries where !name.hasPrefix(".") {
            let target = folder.appendingPathComponent(name)
            if isEmptyFolder(target) {
                rmdir(target.path)
                undo.append { _ = mkdir(target.path, 0o700) }
            }
            try move(staging.appendingPathComponent(name), target)
        }
        // The renamed entries are made durable, and the emptied staging folder goes, before the marker:
        // a crash in between leaves the marker alone, never a staging folder beside a complete store.
        do {
            try DurableFile.syncFolder(folder.path)
        } catch {
            throw KMSError.storageUnavailable("cannot sync \(folder.path): \(error.description)")
        }
        do {
            try FileManager.default.removeItem(at: staging)
            try DurableFile.syncFolder(folder.path)
        } catch {
            // The marker stays: serve and restore then say to empty the folder and restore again.
            throw KMSError.storageUnavailable("cannot remove \(staging.lastPathComponent) after the restore: \(error)")
        }
        // Renamed first to say the restore finished: were its removal to fail, serve refuses the store
        // (the name still starts with `.restore-`) and a new restore says the folder is only to be
        // removed. A failed rename leaves the set-aside name: a half restore, as it is said.
        let done = folder.appendingPathComponent(donePrefix + aside.lastPathComponent.dropFirst(asidePrefix.count))
        let marked = rename(aside.path, done.path) == 0
        // Durable before the removal begins: a crash during it then leaves the finished restore's name.
        if marked { try? DurableFile.syncFolder(folder.path) }
        try? FileManager.default.removeItem(at: marked ? done : aside)
        do {
            try DurableFile.syncFolder(folder.path)
        } catch {
            throw KMSError.storageUnavailable("cannot sync \(folder.path): \(error.description)")
        }
    }

    static let stagingPrefix = ".restore-"
    static let asidePrefix = ".restore-old-"
    /// The set-aside folder once every rename is durable: only its removal is left.
    static let donePrefix = ".restore-done-"

    /// What a restore that did not finish left in `folder`, if anything: a
    /// staging folder (killed before its renames: the store is as it was, so
    /// a first start there would silently begin an empty KMS) or a folder of
    /// set-aside files (killed during them: the store is part old, part
    /// restored). `kms serve` refuses to start on either.
    public static func interruptedRestore(in folder: URL) -> String? {
        ((try? DurableFile.names(in: folder)) ?? []).sorted().first { $0.hasPrefix(stagingPrefix) }
    }

    /// What serve, backup and `clients add --local` say when `folder` holds a
    /// restore's leftovers (`interruptedRestore`): they refuse the store. A
    /// folder that cannot be listed is refused too: it cannot say it holds none.
    public static func interruptedRestoreRefusal(in folder: URL) -> String? {
        do {
            _ = try DurableFile.names(in: folder)
        } catch {
            return "the store cannot be checked for an unfinished restore: \(error.description)"
        }
        return interruptedRestore(in: folder).map {
            "\(folder.path) holds \($0), left by a kms restore that did not finish, so the store is not what the "
                + "backup held; run the restore again (it clears the staging folder, and says what to do when more "
                + "is left)"
        }
    }

    /// Refuses a folder whose restore stopped during its renames: the store
    /// is then part old, part restored. A finished restore that could not
    /// remove the files it replaced left them under `donePrefix`: said as
    /// such, not as a half restore (a review).
    static func refuseInterruptedRenames(in folder: URL) throws(KMSError) {
        let names = try DurableFile.storedNames(in: folder)
        if let done = names.first(where: { $0.hasPrefix(donePrefix) }),
            !names.contains(where: { $0.hasPrefix(asidePrefix) })
        {
            throw KMSError(
                .invalidRequest,
                "\(folder.path) holds \(done), the files a finished restore replaced and could not remove: the store is the restored one; remove \(done), then start kms serve"
            )
        }
        if let aside = names.first(where: { $0.hasPrefix(asidePrefix) }) {
            throw KMSError(
                .invalidRequest,
                "\(folder.path) holds \(aside): a restore stopped while moving files into place, so the store is part old, part restored; empty the folder (keep the backup) and restore again"
            )
        }
    }

    /// Removes the staging folders of restores killed before their renames
    /// (the caller holds the store's lock, and the target passed
    /// `checkTarget`); one that cannot be removed stops the restore, since
    /// serve would refuse the store it left.
    static func removeInterruptedStaging(in folder: URL) throws(KMSError) {
        let names = try DurableFile.storedNames(in: folder)
        for name in names where name.hasPrefix(stagingPrefix) {
            do {
                try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            } catch {
                throw KMSError.storageUnavailable("cannot remove \(name), left by an earlier restore: \(error)")
            }
        }
    }

    /// The names a `--replace-server-secrets` restore removes; throws when
    /// the folder holds more than a first start makes.
    static func checkTarget(_ folder: URL, replaceServerSecrets: Bool, masterKey: MasterKey) throws(KMSError)
        -> [String]
    {
        var startup: [String] = []
        for name in try DurableFile.storedNames(in: folder) {
            // Hidden names too (a probe restored beside `.env` and `.foo/`): only the writer's lock, an
            // earlier restore's folders (judged before this) and temporaries of this store's own writes
            // (swept at start) are a never-started store's.
            if name.hasPrefix(".") {
                if name == AuditWriterLock.storeLockName || name.hasPrefix(stagingPrefix)
                    || DurableFile.isTemporaryName(name)
                {
                    continue
                }
                throw KMSError(
                    .invalidRequest,
                    "\(folder.path) already holds \(name): restore only into a never-started store (a missing or empty folder)"
                )
            }
            let url = folder.appendingPathComponent(name)
            if (name == "keys" || name == "aliases") && isEmptyFolder(url) { continue }
            // `key-usage.json` beside empty key folders counts keys deleted since: stale, replaced too.
            if name.hasSuffix(secretSuffix) || name == "clients.json" || name == "key-usage.json" {
                startup.append(name)
                continue
            }
            throw KMSError(
                .invalidRequest,
                "\(folder.path) already holds \(name): restore only into a never-started store (a missing or empty folder)"
            )
        }
        guard !startup.isEmpty else { return [] }
        guard replaceServerSecrets else {
            throw KMSError(
                .invalidRequest,
                "\(folder.path) holds the server secrets of a first start; pass --replace-server-secrets to replace them"
            )
        }
        if startup.contains("clients.json") {
            let data = try DurableFile.storedBytes(folder.appendingPathComponent("clients.json"))
            let names = (try? JSONDecoder().decode(LocalClientStore.ClientFile.self, from: data ?? Data()))?.clients
                .map(\.name)
            // One record, as a first start makes and as PostgreSQL counts it: a revoked bootstrap admin and
            // an enrolled client given its name are two (a review).
            guard let names, names.count <= 1, names.allSatisfy({ $0 == ClientRegistry.bootstrapName }) else {
                throw KMSError(
                    .invalidRequest, "\(folder.path) holds enrolled clients: restore only into a never-started store")
            }
        }
        return startup
    }

    static func secretNames(in folder: URL) throws(KMSError) -> [String] {
        try DurableFile.storedNames(in: folder)
            .filter { $0.hasSuffix(secretSuffix) && !$0.hasPrefix(".") }
            .map { String($0.dropLast(secretSuffix.count)) }.sorted()
    }

    static func isEmptyFolder(_ url: URL) -> Bool {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
            return false
        }
        return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).isEmpty
    }
}
