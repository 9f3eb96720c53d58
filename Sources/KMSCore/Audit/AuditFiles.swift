import Crypto
public import Foundation

/// Finding, resuming and keying the audit log on disk.
public enum AuditFiles {
    /// The log's files in chain order: rotated ones (`audit.log.<last seq>`) by
    /// number, then the current one.
    public static func chain(for current: URL) -> [URL] {
        chain(for: current, names: (try? DurableFile.names(in: current.deletingLastPathComponent())) ?? [])
    }

    /// `chain(for:)` for the writer: a folder that cannot be listed throws
    /// (taken for an empty one, the chain would start again at seq 1).
    static func listedChain(for current: URL) throws -> [URL] {
        chain(for: current, names: try DurableFile.names(in: current.deletingLastPathComponent()))
    }

    private static func chain(for current: URL, names: [String]) -> [URL] {
        let folder = current.deletingLastPathComponent()
        let prefix = current.lastPathComponent + "."
        let rotated = names.filter { $0.hasPrefix(prefix) && UInt64($0.dropFirst(prefix.count)) != nil }
            .sorted { UInt64($0.dropFirst(prefix.count)) ?? 0 < UInt64($1.dropFirst(prefix.count)) ?? 0 }
        var files = rotated.map { folder.appendingPathComponent($0) }
        if FileManager.default.fileExists(atPath: current.path) { files.append(current) }
        return files
    }

    /// The files of the log at `current` (rotated ones included) that are not empty.
    /// (`stat` follows a symbolic link: a link to an empty log is an empty log.)
    public static func filesWithEntries(_ current: URL) -> [URL] {
        chain(for: current).filter {
            var info = stat()
            return stat($0.path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && info.st_size > 0
        }
    }

    /// Where the chain on disk ends.
    public struct Resume: Sendable {
        /// The last entry's seq (0 when empty).
        public var seq: UInt64 = 0
        /// The hash of the last line (the genesis hash when empty).
        public var prev = AuditChain.genesis
        /// The last seq a signature covers: entries after it were written
        /// before a crash and never checkpointed.
        public var signedSeq: UInt64 = 0
        /// Bytes of a half-written last line, left in the file: the writer cuts
        /// them in the write that records `audit.repaired` (`AuditLog.open`).
        public var repairedBytes = 0
        /// The current file's length up to its last whole line (nil when it
        /// is not a regular file): where the writer continues.
        public var keptBytes: Int?
        /// The last signed line (a checkpoint, or a format-1 entry), if any:
        /// the log's key must verify it before anything is added.
        public var lastSigned: AuditChain.Parsed?

        /// An empty chain: what an injected writer (tests) starts from.
        public init() {}
    }

    /// A log file's bytes: nil when there is none, or when the log is a device
    /// (`/dev/null`); a file that is there but cannot be read throws, since
    /// taking it for an empty log would start a new chain over the old one.
    static func logBytes(_ url: URL) throws -> Data? {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw DurableFile.failure("audit log \(url.path): cannot stat")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { return nil }
        // No size bound: a log grows to KMS_AUDIT_MAX_BYTES (up to 1 TiB) and past it by a batch.
        return try DurableFile.readIfPresent(url, maxBytes: .max)
    }

    /// The end of the chain. A half-written last line — a crash mid-append — is
    /// measured, not cut: the chain continues from the last whole line, and the
    /// writer cuts it only once the log's key has been checked, in the write
    /// that records the repair (a start refused before then changes nothing).
    /// Only reads.
    public static func resume(_ current: URL) throws -> Resume {
        var resume = Resume()
        var currentData = try logBytes(current)
        if let data = currentData {
            let keep = data.last == 0x0A ? data.count : (data.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0)
            resume.repairedBytes = data.count - keep
            resume.keptBytes = keep
            currentData = data.prefix(keep)
        }
        // The line after the one being read (the chain is read backwards): the tail after the last
        // signature, and that signature's own place in the chain, must hold before anything is added.
        // A probe rewrote a stopped server's unsigned tail and appended a copy of a real checkpoint;
        // the start took that copy as the end and the next entry reused a seq, so the log broke further
        // and verify, which stops at the first break, saw nothing past it.
        var later: AuditChain.Parsed?
        for file in try listedChain(for: current).reversed() {
            guard let data = file == current ? currentData : try logBytes(file), !data.isEmpty else { continue }
            for line in AuditLines.backward(data) {
                // A seq no log reaches (a crafted line): the next one would not fit the format's integer.
                guard let line, let parsed = AuditChain.parse(line), parsed.seq < UInt64(Int64.max) / 2 else {
                    throw KMSError.internal("an audit entry in \(file.path) is malformed; run kms audit verify")
                }
                let hash = AuditChain.hash(line)
                if let later {
                    try checkLink(parsed, hash: hash, before: later, in: file)
                    // The line a checkpoint names is checked: the tail and the signature hold together.
                    if later.kind == .checkpoint { return resume }
                } else {
                    resume.seq = parsed.seq
                    resume.prev = hash
                }
                if parsed.kind != .entry, resume.lastSigned == nil {
                    resume.signedSeq = parsed.seq
                    resume.lastSigned = parsed
                    // A format-1 entry carries its own signature: nothing before it is needed.
                    if parsed.kind == .signedEntry { return resume }
                }
                later = parsed
            }
        }
        return resume
    }

    /// Refuses a start whose unsigned tail does not chain: `line` (hashing to `hash`) must be what
    /// `next`, the line after it, names.
    private static func checkLink(
        _ line: AuditChain.Parsed, hash: String, before next: AuditChain.Parsed, in file: URL
    ) throws(KMSError) {
        let holds =
            next.kind == .checkpoint
            ? line.seq == next.seq && next.prev == hash
            : line.seq + 1 == next.seq && next.prev == hash
        guard !holds else { return }
        throw KMSError.internal(
            "the audit log \(file.path) does not chain near seq \(next.seq) (an entry after its last signature was edited, inserted or removed while the server was stopped): kms audit verify says more; to begin a new log, move the log's files aside and keep them (docs/audit.md)"
        )
    }

    /// Blob name of the wrapped Ed25519 audit key.
    public static let keyBlob = "audit-ed25519"

    /// The stored audit key, or nil when the server never started with this store.
    public static func existingKey(store: some SecretBlobStore, masterKey: MasterKey) async throws(KMSError)
        -> Curve25519.Signing.PrivateKey?
    {
        guard let wrapped = try await store.blob(named: keyBlob) else { return nil }
        return try unwrapKey(wrapped, masterKey: masterKey)
    }

    /// The audit signing key, generated on first start and stored wrapped by the master key.
    ///
    /// A new key is made only for a log that holds no entries yet (`log`: the
    /// current file of the log about to be written; nil for a log that is not
    /// a file). A store without the key beside a log with entries means the
    /// key was lost or the store replaced: a new key would sign the rest of the
    /// log while every entry before could no longer be verified, and nothing
    /// would say so until someone ran `kms audit verify`. Start-up is refused
    /// instead, naming the two ways out (docs/audit.md).
    public static func loadOrCreateKey(store: some SecretBlobStore, masterKey: MasterKey, log: URL?)
        async throws(KMSError) -> Curve25519.Signing.PrivateKey
    {
        try await loadOrCreateKeyNotingAge(store: store, masterKey: masterKey, log: log).key
    }

    /// The same, and whether the key was already stored (false: made now). A store whose key is
    /// older than its empty log says so in the new log's first entry (`AuditLog.open`'s
    /// `newLogReason`); asking the store beforehand would read the blob twice.
    public static func loadOrCreateKeyNotingAge(store: some SecretBlobStore, masterKey: MasterKey, log: URL?)
        async throws(KMSError) -> (key: Curve25519.Signing.PrivateKey, existed: Bool)
    {
        let wrapped: Data
        let existed: Bool
        if let existing = try await store.blob(named: keyBlob) {
            wrapped = existing
            existed = true
        } else {
            existed = false
            if let log, let holding = filesWithEntries(log).first {
                throw KMSError.internal(
                    "the store holds no audit key, but the audit log \(holding.path) has entries: a new key would leave them unverifiable. Point the server at the store that holds the log's key, or move the log's files aside to begin a new log (docs/audit.md)"
                )
            }
            let fresh = try masterKey.wrap(Curve25519.Signing.PrivateKey().rawRepresentation, aad: keyAAD)
            wrapped = try await store.createBlob(named: keyBlob, wrapped: fresh)
        }
        return (try unwrapKey(wrapped, masterKey: masterKey), existed)
    }

    private static let keyAAD = "kms-v1/secret/\(keyBlob)"

    /// The audit key a wrapped `keyBlob` holds (a backup's copy, before it is restored).
    public static func key(fromBlob wrapped: Data, masterKey: MasterKey) throws(KMSError)
        -> Curve25519.Signing.PrivateKey
    {
        try unwrapKey(wrapped, masterKey: masterKey)
    }

    private static func unwrapKey(_ wrapped: Data, masterKey: MasterKey) throws(KMSError)
        -> Curve25519.Signing.PrivateKey
    {
        do {
            return try Curve25519.Signing.PrivateKey(rawRepresentation: try masterKey.unwrap(wrapped, aad: keyAAD))
        } catch let error as KMSError {
            throw error
        } catch {
            throw KMSError.internal("the stored audit key is not an Ed25519 key")
        }
    }
}
