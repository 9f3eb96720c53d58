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
/// - `aliases/<alias>`, one small file per alias holding its key id, created
///   with `link(2)` so that two creates can never both claim an alias.
///
/// Every write is durable (`DurableFile`: temp file, fsync, rename, fsync of
/// the folder); files are 0600 in 0700 folders. Start-up only lists the key
/// folder; records are read, and never unwrapped, on first use.
///
/// Writes and cache misses run one at a time on a serial queue, off Swift's
/// cooperative threads (fsync blocks); cached reads take a short lock.
public final class FileKeyStore: KeyStore {
    private struct State {
        var cache: [String: KeyRecord] = [:]
        /// Every key id, sorted (for `list`).
        var ids: [String] = []
    }

    private let keysFolder: URL
    private let aliasFolder: URL
    private let lifecycle: KeyLifecycle
    private let clock: any KMSClock
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "kms.file-key-store")

    /// Opens (creating if needed) the store in `folder`.
    public init(folder: URL, lifecycle: KeyLifecycle, clock: any KMSClock) throws(KMSError) {
        keysFolder = folder.appendingPathComponent("keys")
        aliasFolder = folder.appendingPathComponent("aliases")
        self.lifecycle = lifecycle
        self.clock = clock
        do {
            try DurableFile.prepareFolder(keysFolder)
            try DurableFile.prepareFolder(aliasFolder)
        } catch {
            throw KMSError.storageUnavailable("key store: \(error.description)")
        }
        DurableFile.removeStaleTemporaries(in: keysFolder)
        DurableFile.removeStaleTemporaries(in: aliasFolder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: keysFolder.path)) ?? []
        let ids = names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) }.sorted()
        state.withLock { $0.ids = ids }
    }

    public func create(_ record: KeyRecord) async throws(KMSError) {
        try await serially { () throws(KMSError) in
            guard try self.readKey(record.keyId) == nil else { throw KMSError.internal("duplicate key id") }
            if let alias = record.alias { try self.claimAlias(alias, for: record.keyId) }
            try self.writeKey(record)
            self.state.withLock { state in
                state.cache[record.keyId] = record
                let index = state.ids.partitioningIndex { $0 >= record.keyId }
                state.ids.insert(record.keyId, at: index)
            }
        }
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        guard Self.isSafeName(id) else { return nil }
        if let cached = state.withLock({ $0.cache[id] }) { return cached }
        return try await serially { () throws(KMSError) in try self.readKey(id) }
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        guard Self.isSafeName(alias) else { return nil }
        return try await serially { () throws(KMSError) -> KeyRecord? in
            guard let id = self.aliasTarget(alias) else { return nil }
            return try self.readKey(id)
        }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try await serially { () throws(KMSError) -> KeyUpdate in
            guard let current = try self.readKey(record.keyId) else {
                throw KMSError.internal("update of a missing key")
            }
            guard current.revision == expectedRevision else { return .conflict }
            var stored = record
            stored.revision = expectedRevision + 1
            try self.writeKey(stored)
            self.state.withLock { $0.cache[stored.keyId] = stored }
            return .updated(stored)
        }
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        let ids = state.withLock { state -> [String] in
            let start = after.map { cursor in state.ids.partitioningIndex { $0 > cursor } } ?? 0
            return Array(state.ids[start...].prefix(limit))
        }
        var records: [KeyRecord] = []
        for id in ids {
            if let record = try await key(id: id) { records.append(record) }
        }
        return records
    }

    public func count() async throws(KMSError) -> Int {
        state.withLock { $0.ids.count }
    }

    // MARK: On the queue

    private func serially<T: Sendable>(_ body: @escaping @Sendable () throws(KMSError) -> T) async throws(KMSError) -> T
    {
        let result: Result<T, KMSError> = await withCheckedContinuation { continuation in
            queue.async {
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

    private func readKey(_ id: String) throws(KMSError) -> KeyRecord? {
        if let cached = state.withLock({ $0.cache[id] }) { return cached }
        guard let data = FileManager.default.contents(atPath: keyURL(id).path) else { return nil }
        let record: KeyRecord
        do {
            record = try KeyFileFormat.decode(data)
        } catch {
            throw KMSError.internal("key file \(keyURL(id).lastPathComponent) is corrupt: \(error.message)")
        }
        guard record.keyId == id else { throw KMSError.internal("key file \(id) names another key") }
        state.withLock { $0.cache[id] = record }
        return record
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

    private func aliasTarget(_ alias: String) -> String? {
        guard let data = FileManager.default.contents(atPath: aliasFolder.appendingPathComponent(alias).path) else {
            return nil
        }
        let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Self.isSafeName(id) ? id : nil
    }

    /// Claims `alias` for `id`: a `link(2)` of a fully written temp file, which
    /// fails if the alias exists. An alias left by a crash before its key was
    /// written (its key file is missing) is taken over.
    private func claimAlias(_ alias: String, for id: String) throws(KMSError) {
        let target = aliasFolder.appendingPathComponent(alias)
        if let existing = aliasTarget(alias) {
            guard try readKey(existing) == nil else { throw KMSError.aliasInUse(alias) }
            unlink(target.path)
        }
        do {
            guard try DurableFile.createExclusive(Data((id + "\n").utf8), at: target) else {
                throw KMSError.aliasInUse(alias)
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
