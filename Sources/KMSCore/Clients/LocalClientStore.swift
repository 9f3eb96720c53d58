public import Foundation
import Synchronization

/// `ClientStore` in this process: in memory only (`init()`, for tests), or
/// on the local disk (`init(folder:)`): `clients.json` in the key store
/// folder, every record (sealed) with its hints, rewritten whole and durably
/// on each change (`DurableFile`: temp file, fsync, rename, fsync of the
/// folder; 0600). Client changes are rare and the registry is bounded
/// (`ClientLimits.records`), so one file keeps every change atomic, the
/// last-admin rule included.
public final class LocalClientStore: ClientStore {
    private let url: URL?
    private let table: Mutex<ClientTable>
    private let queue = DispatchQueue(label: "kms.local-client-store")

    /// A store in memory only.
    public init() {
        url = nil
        table = Mutex(ClientTable())
    }

    /// The store in `folder/clients.json`, created on the first change.
    public init(folder: URL) throws(KMSError) {
        let url = Self.file(in: folder)
        self.url = url
        do {
            try DurableFile.prepareFolder(folder)
        } catch {
            throw KMSError.storageUnavailable("client store: \(error.description)")
        }
        table = Mutex(ClientTable(try Self.stored(at: url)))
    }

    /// The clients `url` holds (none when it does not exist), read without changing anything: also what
    /// `kms doctor` checks (a probe found it green over a clients.json the server refused to start with).
    public static func stored(at url: URL) throws(KMSError) -> [StoredClient] {
        guard let data = try DurableFile.storedBytes(url) else { return [] }
        let clients: [StoredClient]
        do {
            clients = try JSONDecoder().decode(ClientFile.self, from: data).clients
        } catch {
            throw KMSError.internal("clients.json is corrupt; restore it from a backup")
        }
        // Every change stores revision + 1, which must not overflow (a review).
        guard clients.allSatisfy({ (0..<Int(Int32.max)).contains($0.revision) }) else {
            throw KMSError.internal("clients.json is corrupt (a revision out of range); restore it from a backup")
        }
        return clients
    }

    /// The file of the store in `folder`.
    public static func file(in folder: URL) -> URL { folder.appendingPathComponent("clients.json") }

    /// The file's shape: a version, then every client.
    struct ClientFile: Codable {
        var version = 1
        var clients: [StoredClient]
    }

    public func client(id: String) async throws(KMSError) -> StoredClient? { table.withLock { $0.clients[id] } }
    public func client(name: String) async throws(KMSError) -> StoredClient? {
        table.withLock { $0.client(name: name) }
    }
    public func client(fingerprint: String) async throws(KMSError) -> StoredClient? {
        table.withLock { $0.client(fingerprint: fingerprint) }
    }
    public func client(accessKeyId: String) async throws(KMSError) -> StoredClient? {
        table.withLock { $0.client(accessKeyId: accessKeyId) }
    }
    public func list(after: String?, limit: Int) async throws(KMSError) -> [StoredClient] {
        table.withLock { $0.list(after: after, limit: limit) }
    }

    @discardableResult
    public func add(_ client: StoredClient, onlyIfEmpty: Bool) async throws(KMSError) -> Bool {
        try await change { table throws(KMSError) in try table.add(client, onlyIfEmpty: onlyIfEmpty) }
    }

    public func update(_ client: StoredClient, expectedRevision: Int) async throws(KMSError) -> ClientUpdate {
        try await change { table throws(KMSError) in try table.update(client, expectedRevision: expectedRevision) }
    }

    /// Applies `body` to a copy of the table, writes the copy durably, and
    /// only then makes it current: a failed write changes nothing.
    private func change<T: Sendable>(_ body: @escaping @Sendable (inout ClientTable) throws(KMSError) -> T)
        async throws(KMSError) -> T
    {
        let result: Result<T, KMSError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(KMSError) -> T in try self.changeNow(body) })
            }
        }
        return try result.get()
    }

    private func changeNow<T>(_ body: (inout ClientTable) throws(KMSError) -> T) throws(KMSError) -> T {
        var copy = table.withLock { $0 }
        let before = copy.clients
        let result = try body(&copy)
        guard copy.clients != before else { return result }
        guard let url else {
            table.withLock { $0 = copy }
            return result
        }
        let file = ClientFile(clients: copy.clients.values.sorted { $0.clientId < $1.clientId })
        let data: Data
        do {
            data = try JSONEncoder().encode(file)
        } catch {
            throw KMSError.internal("cannot encode clients.json")
        }
        do {
            try DurableFile.write(data, to: url)
        } catch {
            // A failure after the rename (the folder's fsync): the file holds the change, so memory does
            // too. Otherwise a revoked client was still admitted, and the next change wrote the old table
            // back over the revocation (a review). The caller still hears of the failure.
            if (try? DurableFile.storedBytes(url)) == data { table.withLock { $0 = copy } }
            throw KMSError.storageUnavailable("client store: \(error.description)")
        }
        table.withLock { $0 = copy }
        return result
    }
}
