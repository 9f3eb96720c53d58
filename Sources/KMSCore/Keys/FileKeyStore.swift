public import Foundation
import KMSProtocol
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `KeyStore` on the local disk, under `KEY_STORE_PATH`:
///
/// - `keys/<keyId>.json`, one file per key (see `KeyFileFormat`), so a write
///   costs the same with 10 keys or 100,000;
/// - `key-usage.json` beside the folders: encryption counts by key and
///   version (`addEncryptions`, `KeyUsageFile`), rewritten whole once a
///   scheduler pass, so its cost grows with the number of keys ever used;
/// - `aliases/<alias>`, one small file per alias (`AliasFileFormat`), created
///   with `link(2)` so that two creates can never both claim an alias, and
///   moved by writing a new file over it (rename).
///
/// Every write is durable (`DurableFile`: temp file, fsync, rename, fsync of
/// the folder); files are 0600 in 0700 folders. Start-up only lists the key
/// folder; records are read, and never unwrapped, on first use. The alias
/// index (alias → key, key → aliases) is built on the store's queue right
/// after start-up, in the background, and kept current by every write.
///
/// Writes and cache misses run one at a time on a serial queue, off Swift's
/// cooperative threads (fsync blocks); cached reads take a short lock. The
/// store is single-instance (lifecycle-v1 rule 9.10).
public final class FileKeyStore: KeyStore {
    private struct State {
        /// Records as stored, without aliases.
        var cache: [String: KeyRecord] = [:]
        /// Every key id, sorted (for `list`).
        var ids: [String] = []
        /// nil until the queue has read the alias folder.
        var aliases: AliasIndex?
        /// When the index's damaged alias files were last read again (`aliasIndex`).
        var damageReadAt: ContinuousClock.Instant?
        /// `key-usage.json`, nil until the queue has read it.
        var encryptions: [String: [Int: UInt64]]?

        func hasKey(_ id: String) -> Bool {
            let index = ids.partitioningIndex { $0 >= id }
            return index < ids.count && ids[index] == id
        }
    }

    private let keysFolder: URL
    /// Encryption counts by key and version (`addEncryptions`), beside the records.
    private let usageURL: URL
    private let aliasFolder: URL
    private let lifecycle: KeyLifecycle
    private let clock: any KMSClock
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "kms.file-key-store")
    /// `key-usage.json`'s writes, off `queue`: its fsyncs, once a scheduler pass, never hold up key reads.
    private let usageQueue = DispatchQueue(label: "kms.file-key-store.usage")
    /// The store's writer lock, held as long as the store is open (`kms serve`).
    private let folderLock: AuditWriterLock?

    /// Opens (creating if needed) the store in `folder`. `readingOnly`
    /// (`kms backup` beside a running server): create nothing and leave
    /// temporary files alone — they may be a running server's writes in flight.
    /// `holding`: the folder's writer lock, kept for the store's life.
    public init(
        folder: URL, lifecycle: KeyLifecycle, clock: any KMSClock, readingOnly: Bool = false,
        holding folderLock: AuditWriterLock? = nil
    ) throws(KMSError) {
        self.folderLock = folderLock
        keysFolder = folder.appendingPathComponent("keys")
        usageURL = folder.appendingPathComponent("key-usage.json")
        aliasFolder = folder.appendingPathComponent("aliases")
        self.lifecycle = lifecycle
        self.clock = clock
        if !readingOnly {
            do {
                try DurableFile.prepareFolder(keysFolder)
                try DurableFile.prepareFolder(aliasFolder)
            } catch {
                throw KMSError.storageUnavailable("key store: \(error.description)")
            }
            DurableFile.removeStaleTemporaries(in: keysFolder)
            DurableFile.removeStaleTemporaries(in: aliasFolder)
        }
        let names = try DurableFile.storedNames(in: keysFolder)
        let ids = names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) }.sorted()
        state.withLock { $0.ids = ids }
        queue.async { [self] in _ = try? aliasIndex() }
    }

    public func create(_ record: KeyRecord) async throws(KMSError) {
        // Names are file names: anything else (a crafted restore) must not reach a path.
        guard Self.isSafeName(record.keyId), record.aliases.allSatisfy(Self.isSafeName) else {
            throw KMSError(.invalidRequest, "a key id or alias is not a safe file name")
        }
        try await serially { () throws(KMSError) in
            guard try self.readKey(record.keyId) == nil else { throw KMSError.internal("duplicate key id") }
            var claimed: [AliasRecord] = []
            do throws(KMSError) {
                for alias in record.aliases {
                    let entry = AliasRecord(
                        alias: alias, keyId: record.keyId, createdAt: record.createdAt, updatedAt: record.createdAt)
                    try self.claimAlias(entry)
                    claimed.append(entry)
                }
                try self.writeKey(record.withAliases([]))
            } catch {
                for entry in claimed { unlink(self.aliasURL(entry.alias).path) }
                // A key file renamed in before its folder fsync failed goes too: the caller was told it
                // was not made, so it must not come back (without its aliases) at the next start.
                unlink(self.keyURL(record.keyId).path)
                // Best effort, and durable: a crash after the unlinks must not bring them back (a review).
                try? DurableFile.syncFolder(self.keysFolder.path)
                if !claimed.isEmpty { try? DurableFile.syncFolder(self.aliasFolder.path) }
                self.forgetAfterFailedChange(keyId: record.keyId)
                throw error
            }
            self.state.withLock { state in
                state.cache[record.keyId] = record.withAliases([])
                let index = state.ids.partitioningIndex { $0 >= record.keyId }
                state.ids.insert(record.keyId, at: index)
                for entry in claimed { state.aliases?.set(entry) }
            }
        }
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        guard Self.isSafeName(id) else { return nil }
        let cached = state.withLock { state -> KeyRecord? in
            guard let record = state.cache[id], let aliases = state.aliases else { return nil }
            return record.withAliases(aliases.names(of: id))
        }
        if let cached { return cached }
        return try await serially { () throws(KMSError) in try self.readAttached(id) }
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        guard Self.isSafeName(alias) else { return nil }
        // As `key(id:)`: from the index and the cache under the short lock when both have it, so that a
        // request naming a key by alias does not wait behind another client's write on the queue (a review
        // measured a rotation loop of a 4,000-version key taking others' alias encrypts from 1.9 to 50 ms).
        // An index with damaged names goes to the queue, which reads them again.
        enum Cached {
            case found(KeyRecord)
            case absent
        }
        let cached = state.withLock { state -> Cached? in
            guard let aliases = state.aliases, aliases.damaged.isEmpty else { return nil }
            guard let id = aliases.byName[alias]?.keyId else { return .absent }
            return state.cache[id].map { .found($0.withAliases(aliases.names(of: id))) }
        }
        switch cached {
        case .found(let record): return record
        case .absent: return nil
        case nil: break
        }
        return try await serially { () throws(KMSError) -> KeyRecord? in
            guard let id = try self.undamagedAliasIndex(alias).byName[alias]?.keyId else { return nil }
            return try self.readAttached(id)
        }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try await serially { () throws(KMSError) -> KeyUpdate in
            // A key deleted meanwhile is a lost race: the caller's retry reads it again (404).
            guard let current = try self.readKey(record.keyId), current.revision == expectedRevision else {
                return .conflict
            }
            var stored = record.withAliases([])
            stored.revision = expectedRevision + 1
            try self.writeKey(stored)
            self.state.withLock { $0.cache[stored.keyId] = stored }
            return .updated(try self.readAttached(stored.keyId) ?? stored)
        }
    }

    public func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
        guard Self.isSafeName(keyId) else { return false }
        return try await serially { () throws(KMSError) -> Bool in
            guard let current = try self.readKey(keyId), current.revision == expectedRevision,
                current.isDueForDeletion(at: now)
            else { return false }
            // Aliases first (lifecycle-v1 section 1): a crash between leaves a key without aliases, retried next tick.
            let names = try self.aliasIndex().names(of: keyId)
            do throws(KMSError) {
                for name in names { unlink(self.aliasURL(name).path) }
                if !names.isEmpty { try self.sync(self.aliasFolder) }
                self.state.withLock { state in
                    for name in names { state.aliases?.remove(name) }
                }
                guard unlink(self.keyURL(keyId).path) == 0 || errno == ENOENT else {
                    throw KMSError.storageUnavailable("cannot delete key \(keyId): errno \(errno)")
                }
                try self.sync(self.keysFolder)
            } catch {
                // Files may be gone already: read the disk again rather than serve what it no longer holds.
                self.forgetAfterFailedChange(keyId: keyId)
                throw error
            }
            self.state.withLock { state in
                state.cache[keyId] = nil
                let index = state.ids.partitioningIndex { $0 >= keyId }
                if index < state.ids.count, state.ids[index] == keyId { state.ids.remove(at: index) }
            }
            return true
        }
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        // Ids past one that vanished under the read (deleted meanwhile) fill its place: a short page reads as
        // the store's end, and `GET /keys` answered without `next` while keys followed (a review).
        var records: [KeyRecord] = []
        var cursor = after
        while records.count < limit {
            let ids = state.withLock { state -> [String] in
                let start = cursor.map { cursor in state.ids.partitioningIndex { $0 > cursor } } ?? 0
                return Array(state.ids[start...].prefix(limit - records.count))
            }
            guard let last = ids.last else { break }
            for id in ids {
                if let record = try await key(id: id) { records.append(record) }
            }
            cursor = last
        }
        return records
    }

    public func count() async throws(KMSError) -> Int {
        state.withLock { $0.ids.count }
    }

    /// A scan of every record (cached after its first read): the scheduler
    /// asks once a minute, and a personal KMS holds hundreds of keys, not millions.
    /// A key file that cannot be read cannot say whether it is due: it is
    /// named as `.unreadable` on every pass until someone repairs it.
    ///
    /// Key by key (`key(id:)`: from the cache, else one read on the queue each), not one call on the
    /// queue for all of them: the first pass after a start read a 149 MB store in one go, and every write
    /// and alias lookup of every client waited 7 s behind it (a review). A change to a due key is decided
    /// again under compare-and-set, so a record read a moment early does no harm.
    public func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey] {
        var due: [DueKey] = []
        var readable = 0
        // Unreadable files do not take the places of due keys (a disk error on every read would).
        for id in state.withLock({ $0.ids }) where readable < limit {
            do throws(KMSError) {
                if let record = try await key(id: id),
                    record.isDueForDeletion(at: now) || record.isDueForRotation(at: now)
                {
                    due.append(.readable(record))
                    readable += 1
                }
            } catch {
                due.append(.unreadable(keyId: id, error))
            }
        }
        return due
    }

    /// One durable write of `key-usage.json` per call, which drops keys deleted since.
    public func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]] {
        try await serially(on: usageQueue) { () throws(KMSError) -> [String: [Int: UInt64]] in
            let live = self.state.withLock { state in counts.keys.filter { state.hasKey($0) } }
            guard !live.isEmpty else { return [:] }
            var usage: [String: [Int: UInt64]]
            if let known = self.state.withLock({ $0.encryptions }) {
                usage = known
            } else {
                usage = try KeyUsageFile.read(self.usageURL)
            }
            var totals: [String: [Int: UInt64]] = [:]
            for keyId in live {
                for (version, count) in counts[keyId] ?? [:] {
                    let total = (usage[keyId]?[version] ?? 0).addingEncryptions(count)
                    usage[keyId, default: [:]][version] = total
                    totals[keyId, default: [:]][version] = total
                }
            }
            usage = self.state.withLock { state in usage.filter { state.hasKey($0.key) } }
            do throws(DurableFile.Failure) {
                try DurableFile.write(KeyUsageFile.encode(usage), to: self.usageURL)
            } catch {
                self.state.withLock { $0.encryptions = nil }  // read the disk again next time
                throw KMSError.storageUnavailable("key usage: \(error.description)")
            }
            self.state.withLock { $0.encryptions = usage }
            return totals
        }
    }

    public func alias(_ name: String) async throws(KMSError) -> AliasRecord? {
        guard Self.isSafeName(name) else { return nil }
        return try await serially { () throws(KMSError) in try self.undamagedAliasIndex(name).byName[name] }
    }

    public func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError) {
        guard Self.isSafeName(record.alias), Self.isSafeName(record.keyId) else {
            throw KMSError(.invalidRequest, "a key id or alias is not a safe file name")
        }
        try await serially { () throws(KMSError) in
            if let refusal = KMSError.refusalToTakeAlias(try self.readKey(record.keyId), copying: copying) {
                throw refusal
            }
            do throws(KMSError) {
                try self.claimAlias(record)
            } catch  where error.code == .serverBusy {
                // The link may have happened before the folder fsync failed: read the folder again.
                self.forgetAfterFailedChange(keyId: nil)
                throw error
            }
            self.state.withLock { $0.aliases?.set(record) }
        }
    }

    public func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date)
        async throws(KMSError) -> Bool
    {
        try await serially { () throws(KMSError) -> Bool in
            guard var record = try self.undamagedAliasIndex(alias).byName[alias], record.keyId == expectedKeyId else {
                return false
            }
            if let refusal = KMSError.refusalToTakeAlias(try self.readKey(keyId)) { throw refusal }
            record.keyId = keyId
            record.updatedAt = now
            do throws(DurableFile.Failure) {
                try DurableFile.write(AliasFileFormat.encode(record), to: self.aliasURL(alias))
            } catch {
                // The rename may have happened: read the folder again on next use.
                self.forgetAfterFailedChange(keyId: nil)
                throw KMSError.storageUnavailable("cannot move alias: \(error.description)")
            }
            self.state.withLock { $0.aliases?.set(record) }
            return true
        }
    }

    public func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool {
        try await serially { () throws(KMSError) -> Bool in
            guard try self.undamagedAliasIndex(alias).byName[alias]?.keyId == expectedKeyId else { return false }
            guard unlink(self.aliasURL(alias).path) == 0 || errno == ENOENT else {
                throw KMSError.storageUnavailable("cannot delete alias: errno \(errno)")
            }
            do throws(KMSError) {
                try self.sync(self.aliasFolder)
            } catch {
                self.forgetAfterFailedChange(keyId: nil)  // the file is gone; the index must not say otherwise
                throw error
            }
            self.state.withLock { $0.aliases?.remove(alias) }
            return true
        }
    }

    public func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord] {
        try await serially { () throws(KMSError) in
            let index = try self.aliasIndex()
            // Not a list without the damaged alias: a backup made from it would lose the alias unseen.
            if let (name, why) = index.damaged.min(by: { $0.key < $1.key }) {
                throw KMSError.damagedRecord("alias \(name): \(why)")
            }
            return index.page(after: after, limit: limit, keyId: keyId)
        }
    }

    // MARK: On the queue

    private func serially<T: Sendable>(
        on chosen: DispatchQueue? = nil, _ body: @escaping @Sendable () throws(KMSError) -> T
    ) async throws(KMSError) -> T {
        let result: Result<T, KMSError> = await withCheckedContinuation { continuation in
            (chosen ?? queue).async {
                do throws(KMSError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    private func keyURL(_ id: String) -> URL { keysFolder.appendingPathComponent("\(id).json") }
    private func aliasURL(_ alias: String) -> URL { aliasFolder.appendingPathComponent(alias) }

    private func sync(_ folder: URL) throws(KMSError) {
        do {
            try DurableFile.syncFolder(folder.path)
        } catch {
            throw KMSError.storageUnavailable("cannot sync \(folder.lastPathComponent): \(error.description)")
        }
    }

    private func readAttached(_ id: String) throws(KMSError) -> KeyRecord? {
        guard let record = try readKey(id) else { return nil }
        return record.withAliases(try aliasIndex().names(of: id))
    }

    private func readKey(_ id: String) throws(KMSError) -> KeyRecord? {
        guard Self.isSafeName(id) else { return nil }
        if let cached = state.withLock({ $0.cache[id] }) { return cached }
        guard let data = try DurableFile.storedBytes(keyURL(id)) else { return nil }
        let record = try Self.decodeKeyFile(data, id: id)
        state.withLock { $0.cache[id] = record }
        return record
    }

    private static func decodeKeyFile(_ data: Data, id: String) throws(KMSError) -> KeyRecord {
        try KeyFileFormat.decodeStored(data, keyId: id, place: "key file keys/\(id).json")
    }

    /// What `kms doctor` reports, read from `folder` without opening the store: key files that do
    /// not read as their key's record, and alias files that do not read as an alias. The server
    /// answers a request that needs such a key `503` (listing keys too: it never leaves a key out
    /// silently) and logs which file; this names them all at once. An alias whose key is gone is
    /// not damage: a crash leaves those, and the next claim of the name takes it over.
    public static func damagedFiles(folder: URL) throws(KMSError) -> [String] {
        var damaged: [String] = []
        let keys = folder.appendingPathComponent("keys")
        // A file that cannot be read at all (EACCES, EIO) is thrown, not listed: it is not damage to restore.
        for name in try DurableFile.storedNames(in: keys) where name.hasSuffix(".json") && !name.hasPrefix(".") {
            do throws(KMSError) {
                // A link to nothing, a folder or a device in its place is damage as a bad record is.
                guard let data = try DurableFile.storedBytes(keys.appendingPathComponent(name)) else { continue }
                _ = try decodeKeyFile(data, id: String(name.dropLast(5)))
            } catch  where error.isDamagedRecord {
                damaged.append(error.detail ?? "keys/\(name): \(error.message)")
            }
        }
        let aliases = folder.appendingPathComponent("aliases")
        for name in try DurableFile.storedNames(in: aliases) where !name.hasPrefix(".") && isSafeName(name) {
            let data: Data?
            do {
                data = try DurableFile.storedBytes(aliases.appendingPathComponent(name))
            } catch  where error.isDamagedRecord {
                damaged.append(error.detail ?? "aliases/\(name): \(error.message)")
                continue
            }
            guard let data else { continue }
            if AliasFileFormat.decode(data, alias: name) == nil {
                damaged.append(
                    "alias file aliases/\(name) is corrupt: the alias can be neither used nor deleted, nor made again")
            }
        }
        return damaged
    }

    /// After a change failed part-way (a link, rename or unlink done, its
    /// folder fsync not): drop the alias index and the key's cached record so
    /// the next use reads the disk, which is what every reader then sees.
    /// Otherwise the cache would disagree with the folder until a restart
    /// (an alias on disk but unknown here could be neither made nor deleted).
    private func forgetAfterFailedChange(keyId: String?) {
        state.withLock { state in
            state.aliases = nil
            if let keyId { state.cache[keyId] = nil }
        }
    }

    private func writeKey(_ record: KeyRecord) throws(KMSError) {
        let now = clock.now()
        let data = KeyFileFormat.encode(record) { self.lifecycle.status(record, version: $0, now: now) }
        do {
            try DurableFile.write(data, to: keyURL(record.keyId))
        } catch {
            // The rename may have happened: forget the cached copy so the next read sees the disk.
            state.withLock { $0.cache[record.keyId] = nil }
            throw KMSError.storageUnavailable("cannot write key \(record.keyId): \(error.description)")
        }
    }

    /// The alias index, reading the folder the first time. An alias whose
    /// key file is missing (left by a crash before its key was written) is
    /// not indexed; a later claim takes it over. A v1 alias file (a bare key
    /// id) takes its key's `createdAt` (lifecycle-v1 rule 9.9).
    ///
    /// A damaged alias file is read again, at most once a second, by the
    /// operations that use the index, until it reads as an alias or is gone:
    /// one an operator repaired works within a second (a review: it stayed
    /// damaged until a restart). A file that still cannot be read stays
    /// damaged on its own: it never fails the index (a second review). Runs
    /// on `queue`.
    private func aliasIndex() throws(KMSError) -> AliasIndex {
        if var index = state.withLock({ $0.aliases }) {
            let now = ContinuousClock.now
            guard !index.damaged.isEmpty,
                state.withLock({ $0.damageReadAt.map { now - $0 >= .seconds(1) } ?? true })
            else { return index }
            for name in index.damaged.keys.sorted() {
                let before = index.damaged.removeValue(forKey: name)
                do throws(KMSError) {
                    try self.index(name, into: &index)
                } catch  where error.isDamagedRecord {
                    index.damaged[name] = error.detail ?? before ?? "damaged"
                } catch {
                    // Not readable just now (a storage error): still damaged, for the reason it was.
                    index.damaged[name] = before ?? "damaged"
                }
            }
            state.withLock { state in
                state.aliases = index
                state.damageReadAt = now
            }
            return index
        }
        var index = AliasIndex()
        let names = try DurableFile.storedNames(in: aliasFolder)
        for name in names where !name.hasPrefix(".") && Self.isSafeName(name) {
            try self.index(name, into: &index)
        }
        state.withLock { $0.aliases = index }
        return index
    }

    /// Reads alias file `name` into `index`: its record, its damage, or nothing (no such file, or its
    /// key's file missing).
    private func index(_ name: String, into index: inout AliasIndex) throws(KMSError) {
        let data: Data?
        do {
            data = try DurableFile.storedBytes(aliasURL(name))
        } catch  where error.isDamagedRecord {
            index.damaged[name] = error.detail ?? "damaged"
            return
        }
        guard let data else { return }
        guard let parsed = AliasFileFormat.decode(data, alias: name) else {
            index.damaged[name] = "alias file aliases/\(name) is corrupt"
            return
        }
        guard state.withLock({ $0.hasKey(parsed.keyId) }) else { return }
        if let record = parsed.record {
            index.set(record)
        } else if let key = try readKey(parsed.keyId) {
            index.set(AliasRecord(alias: name, keyId: key.keyId, createdAt: key.createdAt, updatedAt: key.createdAt))
        }
    }

    /// The alias index, refusing when `alias`'s own file is damaged.
    private func undamagedAliasIndex(_ alias: String) throws(KMSError) -> AliasIndex {
        let index = try aliasIndex()
        if let why = index.damaged[alias] { throw KMSError.damagedRecord("alias \(alias): \(why)") }
        return index
    }

    /// Claims an alias: a `link(2)` of a fully written temp file, which fails
    /// if the alias exists. An alias left by a crash before its key was
    /// written (its key file is missing) is taken over.
    private func claimAlias(_ record: AliasRecord) throws(KMSError) {
        let target = aliasURL(record.alias)
        if try aliasIndex().byName[record.alias] != nil { throw KMSError.aliasInUse(record.alias) }
        if let data = try DurableFile.storedBytes(target) {
            // Only a readable alias file whose key file is missing is taken over; anything else is kept.
            guard let parsed = AliasFileFormat.decode(data, alias: record.alias), try readKey(parsed.keyId) == nil
            else { throw KMSError.aliasInUse(record.alias) }
            unlink(target.path)
        }
        do {
            guard try DurableFile.createExclusive(AliasFileFormat.encode(record), at: target) else {
                throw KMSError.aliasInUse(record.alias)
            }
        } catch let error as KMSError {
            throw error
        } catch {
            throw KMSError.storageUnavailable("cannot claim alias: \(error)")
        }
    }

    /// Key ids and aliases are used as file names: only their own alphabets pass.
    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && !name.hasPrefix(".")
            && name.utf8.allSatisfy { ClientToken.isTokenCharacter($0) && $0 != UInt8(ascii: "~") }
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, for a predicate
    /// that is false then true along the array (binary search).
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
