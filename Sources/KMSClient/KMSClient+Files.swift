import Crypto
public import Foundation
public import KMSProtocol

/// Whole-file encryption with data keys (file-format-v1): the plaintext never
/// leaves this machine; the server only wraps and unwraps each file's data
/// key, bound to the file's context.
extension KMSClient {
    /// What an encryption used.
    public struct FileKeyUse: Sendable {
        public let keyId: String
        public let version: Int
    }

    /// A ciphertext answered by encrypt, rewrap or datakey must be a native ciphertext naming the key and
    /// version its answer names, and the key asked for when that was a key id (a rewrap keeps its key):
    /// else a file could be written, and a verb end with success, for a header no server opens, and an
    /// app store a wrapped key nothing opens (a review's impostor answered "garbage"; it needs the session
    /// key, but the check costs nothing).
    static func checkWrapped(_ ciphertext: String, keyId: String, version: Int, asked: String?) throws {
        guard let named = NativeCiphertext.keyAndVersion(ciphertext), named.keyId == keyId, named.version == version,
            asked.map({ !$0.hasPrefix("key_") || $0 == keyId }) ?? true
        else {
            throw KMSClientError.protocolViolation(
                "the wrapped data key the server answered is not a ciphertext of the key and version it names")
        }
    }

    /// Chunks sealed or opened at once by default: one per core.
    public static var defaultFileThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Encrypts everything `read` gives to `write` under a fresh data key of
    /// `key`, bound to `context`, with a fresh CSPRNG salt.
    public func encryptStream(
        key: String, context: [String: String] = [:], threads: Int = KMSClient.defaultFileThreads,
        read: FileStream.Read, write: FileStream.Write, progress: ((UInt64) -> Void)? = nil
    ) async throws -> FileKeyUse {
        // The header needs the wrapped key, the wrap needs the context's AAD: build the AAD first.
        let probe = try FileHeader(salt: Data(count: FileFormat.saltSize), wrappedKey: "x", context: context)
        let made = try await dataKey(key: key, bytes: 32, aad: probe.kmsAAD)
        let dataKey = SymmetricKey(data: made.plaintext)
        let header = try FileHeader(wrappedKey: made.ciphertext, context: context)
        let keys = try FileKeys(dataKey: dataKey, header: header)
        try await FileStream.encrypt(
            header: header, keys: keys, threads: threads, read: read, write: write, progress: progress)
        return FileKeyUse(keyId: made.keyId, version: made.version)
    }

    /// Decrypts a whole file from `read` to `write`: the header, the data key
    /// unwrapped by the server under the file's context, the commitment, then
    /// every chunk, each released once its tag verified. Returns the header.
    /// `read` must return memory no other process can change (plain reads,
    /// not a mapping of a file): chunks are opened where they lie.
    ///
    /// Chunks reach `write` as they verify, before the file's end is seen: a
    /// file cut short, or one whose last chunk is not the final one, throws
    /// only then. When this throws, discard everything written (as
    /// `decryptFile` does with its temporary file): it is a true prefix of the
    /// plaintext, but not the whole of it.
    @discardableResult
    public func decryptStream(
        threads: Int = KMSClient.defaultFileThreads, expectedContext: [String: String]? = nil,
        expectedKey: String? = nil, read: FileStream.Read, write: FileStream.Write,
        progress: ((UInt64) -> Void)? = nil
    ) async throws -> FileHeader {
        let (header, _, commitment) = try await FileStream.readHeader(read: read)
        let keys = try await fileKeys(
            header, commitment: commitment, expectedContext: expectedContext, expectedKey: expectedKey)
        try await FileStream.decrypt(keys: keys, threads: threads, read: read, write: write, progress: progress)
        return header
    }

    /// Steps 3 of section 4: unwrap at the server, derive, check the commitment. With `expectedContext`,
    /// a header whose context is not exactly that is `context_mismatch`, and with `expectedKey` (a key id,
    /// or an alias this client may read) one wrapped under another key `key_mismatch`, before the data key
    /// is asked for. The wrapped key must be a native ciphertext (`kms:v1:<keyId>:<version>:…`, which
    /// names its key: `kms inspect-file` shows it), and the server's answer must name that key and version.
    func fileKeys(
        _ header: FileHeader, commitment: Data, expectedContext: [String: String]?, expectedKey: String? = nil
    ) async throws -> FileKeys {
        // The format keeps the wrapped key opaque; this client opens only what it writes: a key that names
        // itself. The server also unwraps the AWS door's form, which names nothing a reader could check (a
        // review made `inspect-file` show "key ?" for a file that then decrypted).
        guard let named = NativeCiphertext.keyAndVersion(header.wrappedKey) else {
            throw FileFormatError(
                .headerMalformed,
                "the file's wrapped key is not a kms:v1 ciphertext naming its key; this client does not open it")
        }
        if let expectedContext, !header.hasContext(expectedContext) {
            throw FileFormatError(
                .contextMismatch,
                "the file's context is not the one expected: another file than the one asked for, or a context mistyped (kms inspect-file shows the file's)"
            )
        }
        if let expectedKey {
            let wanted = NativeCiphertext.isKeyId(expectedKey) ? expectedKey : try await key(expectedKey).keyId
            guard named.keyId == wanted else {
                throw FileFormatError(
                    .keyMismatch,
                    "the file's data key is wrapped under \(named.keyId), not the key expected (\(wanted)): a file made under another key (kms inspect-file shows the file's)"
                )
            }
        }
        let unwrapped = try await Self.naming(named) {
            try await decrypt(ciphertext: header.wrappedKey, aad: header.kmsAAD)
        }
        guard unwrapped.keyId == named.keyId, unwrapped.version == named.version else {
            throw KMSClientError.protocolViolation(
                "the server unwrapped the file's data key under a key or version other than the one its header names")
        }
        let keys = try FileKeys(dataKey: SymmetricKey(data: unwrapped.plaintext), header: header)
        try keys.verify(storedCommitment: commitment)
        return keys
    }

    /// Encrypts the file at `input` to `output` (written only when complete).
    public func encryptFile(
        at input: URL, to output: URL, key: String, context: [String: String] = [:],
        threads: Int = KMSClient.defaultFileThreads, progress: ((UInt64) -> Void)? = nil
    ) async throws -> FileKeyUse {
        let source = try FileHandle(forReadingFrom: input)
        defer { try? source.close() }
        // Plain reads, not a mapping: a mapped input shortened by another process raises SIGBUS, which
        // would end the host process of a library (the CLI handles it and maps the input).
        let read = { try FileIO.readExactly(source, $0) }
        return try await AtomicOutputFile.writing(output) { sink in
            try await encryptStream(
                key: key, context: context, threads: threads, read: { try read($0) },
                write: { try sink.write($0) }, progress: progress)
        }
    }

    /// Decrypts the file at `input` to `output` (written only when it all
    /// verified), or only the plaintext bytes `range` (inclusive, END clamped).
    ///
    /// The file's context authenticates its header, not which file it is: a file swapped for another
    /// under the same key (by whoever can write where it is stored) decrypts under its own context.
    /// Pass the context it was encrypted with as `expectedContext` (`context_mismatch` otherwise,
    /// before the server is asked), or read the returned header's; and the key as `expectedKey` when the
    /// client may decrypt under several (`key_mismatch` otherwise: a client with `crypto:datakey` on any of
    /// them can make a file with the context expected). The plaintext is written to a
    /// temporary file (mode 0600) beside `output` and renamed only when all of it verified; a process
    /// killed meanwhile leaves that file (`.NAME.kms-tmp-…`) behind, in a synced folder too.
    @discardableResult
    public func decryptFile(
        at input: URL, to output: URL, expectedContext: [String: String]? = nil, expectedKey: String? = nil,
        range: ClosedRange<UInt64>? = nil, threads: Int = KMSClient.defaultFileThreads,
        progress: ((UInt64) -> Void)? = nil
    ) async throws -> FileHeader {
        let source = try FileHandle(forReadingFrom: input)
        defer { try? source.close() }
        return try await AtomicOutputFile.writing(output) { sink in
            if let range {
                return try await decryptRange(
                    source, start: range.lowerBound, end: range.upperBound, expectedContext: expectedContext,
                    expectedKey: expectedKey, write: { try sink.write($0) })
            }
            if let header = try await decryptSeekable(
                source, threads: threads, expectedContext: expectedContext, expectedKey: expectedKey,
                write: { try sink.write($0) }, progress: progress)
            {
                return header
            }
            return try await decryptStream(
                threads: threads, expectedContext: expectedContext, expectedKey: expectedKey,
                read: { try FileIO.readExactly(source, $0) }, write: { try sink.write($0) }, progress: progress)
        }
    }

    /// A whole regular file, from its start: the header, the data key and
    /// the commitment as `decryptStream` checks them, then the chunks read
    /// and opened on every thread (`FileStream.decrypt(keys:headerLength:fileSize:…)`).
    /// Returns nil, having read nothing, when `source` is not a regular file:
    /// read it with `decryptStream` instead.
    /// As with `decryptStream`, discard what `write` was given when this throws.
    public func decryptSeekable(
        _ source: FileHandle, threads: Int = KMSClient.defaultFileThreads, expectedContext: [String: String]? = nil,
        expectedKey: String? = nil, write: FileStream.Write, progress: ((UInt64) -> Void)? = nil
    ) async throws -> FileHeader? {
        guard let readAt = FileIO.positionalReader(source) else { return nil }
        try source.seek(toOffset: 0)
        let (header, length, commitment) = try await FileStream.readHeader(read: { try FileIO.readExactly(source, $0) })
        let keys = try await fileKeys(
            header, commitment: commitment, expectedContext: expectedContext, expectedKey: expectedKey)
        let size = try source.seekToEnd()
        try await FileStream.decrypt(
            keys: keys, headerLength: length, fileSize: size, threads: threads, readAt: readAt, write: write,
            progress: progress)
        // Bytes appended while it was read were never looked at: the stream reader refuses them, so this one
        // does too (a review: exit 0). One cut short after its chunks were read is what a stream would find.
        let after = try source.seekToEnd()
        if after > size {
            throw FileFormatError(.trailingData, "the file grew while it was read: data follows the final chunk")
        }
        if after < size { throw FileFormatError(.truncated, "the file was cut short while it was read") }
        return header
    }

    /// Random access on a seekable file (section 5): plaintext bytes
    /// `start...end` (END clamped), written in order. As with `decryptStream`, discard what `write` was
    /// given when this throws.
    @discardableResult
    public func decryptRange(
        _ source: FileHandle, start: UInt64, end: UInt64, expectedContext: [String: String]? = nil,
        expectedKey: String? = nil, write: FileStream.Write
    ) async throws -> FileHeader {
        try source.seek(toOffset: 0)
        let (header, length, commitment) = try await FileStream.readHeader(read: { try FileIO.readExactly(source, $0) })
        let keys = try await fileKeys(
            header, commitment: commitment, expectedContext: expectedContext, expectedKey: expectedKey)
        let size = try source.seekToEnd()
        let layout = try FileLayout(headerLength: length, fileSize: size)
        try await FileStream.decryptRange(
            keys: keys, layout: layout, start: start, end: end,
            readAt: { offset, count in
                try source.seek(toOffset: offset)
                return try FileIO.readExactly(source, count)
            }, write: write)
        return header
    }

    /// The refusals of a file's key that `naming` completes.
    static let keyRefusals: Set = [
        ErrorCode.keyNotFound.rawValue, ErrorCode.keyVersionNotFound.rawValue, ErrorCode.keyVersionRetired.rawValue,
    ]

    /// Runs the unwrap or rewrap of a file's data key; a refusal of its key (`key_not_found`,
    /// `key_version_not_found`, `key_version_retired`) then names the key and version the file's header gives:
    /// the file's reader seldom knows them (a backup author's walkthrough: a file under a deleted key said only
    /// "no key has this id or alias", and `kms inspect-file` was needed to learn which). The header is not
    /// authenticated yet, so the note says the file *names* them; the key id's grammar keeps it plain text.
    static func naming<T>(_ named: (keyId: String, version: Int)?, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let refusal as KMSClientError where keyRefusals.contains(refusal.code ?? "") {
            guard let named else { throw refusal }
            let unknown = refusal.code == ErrorCode.keyNotFound.rawValue
            throw refusal.adding(
                "; the file names \(named.keyId) v\(named.version)"
                    + (unknown
                        ? ", which this server does not have (deleted, or the file was made by another server)" : ""))
        }
    }

    /// After a key rotation, before the old version's grace period ends:
    /// the server rewraps the data key under the active version (same
    /// context); the header gets the new wrapped key and the commitment and
    /// chunks are copied unchanged. Nothing is decrypted here, so only the
    /// layout is checked (section 5: at least one chunk, the last at least a
    /// tag long, else `truncated`); the commitment and the chunks' tags need
    /// the data key, which the server keeps, and are checked on decryption.
    public func rewrapStream(read: FileStream.Read, write: FileStream.Write) async throws -> FileKeyUse {
        let (header, length, commitment) = try await FileStream.readHeader(read: read)
        let rewrapped = try await Self.naming(NativeCiphertext.keyAndVersion(header.wrappedKey)) {
            try await rewrap(ciphertext: header.wrappedKey, aad: header.kmsAAD)
        }
        var prologue = try header.replacingWrappedKey(rewrapped.ciphertext).encoded
        prologue.append(commitment)
        try await write(prologue)
        var size = UInt64(length + FileFormat.commitmentSize)
        while true {
            let block = try await read(1 << 20)
            if block.isEmpty { break }
            size += UInt64(block.count)
            try await write(block)
        }
        _ = try FileLayout(headerLength: length, fileSize: size)
        return FileKeyUse(keyId: rewrapped.keyId, version: rewrapped.version)
    }

    /// `rewrapStream` from the file at `input` to `output`.
    public func rewrapFile(at input: URL, to output: URL) async throws -> FileKeyUse {
        let source = try FileHandle(forReadingFrom: input)
        defer { try? source.close() }
        return try await AtomicOutputFile.writing(output) { sink in
            // Plain reads, as `encryptFile`: no SIGBUS for the host process when the input shrinks.
            let read = { try FileIO.readExactly(source, $0) }
            return try await rewrapStream(read: { try read($0) }, write: { try sink.write($0) })
        }
    }

    /// Encrypts an async sequence of byte blocks (data that is not a file).
    public func encrypt<Input: AsyncSequence>(
        _ input: Input, key: String, context: [String: String] = [:],
        threads: Int = KMSClient.defaultFileThreads, write: FileStream.Write
    ) async throws -> FileKeyUse where Input.Element == Data {
        var reader = AsyncBlockReader(input.makeAsyncIterator())
        return try await encryptStream(
            key: key, context: context, threads: threads, read: { try await reader.read($0) }, write: write)
    }

    /// Decrypts an async sequence of byte blocks holding a whole file. As with
    /// `decryptStream`, discard what `write` was given when this throws.
    @discardableResult
    public func decrypt<Input: AsyncSequence>(
        _ input: Input, threads: Int = KMSClient.defaultFileThreads, expectedContext: [String: String]? = nil,
        expectedKey: String? = nil, write: FileStream.Write
    ) async throws -> FileHeader where Input.Element == Data {
        var reader = AsyncBlockReader(input.makeAsyncIterator())
        return try await decryptStream(
            threads: threads, expectedContext: expectedContext, expectedKey: expectedKey,
            read: { try await reader.read($0) }, write: write)
    }
}

/// Exact-count reads over an async sequence of blocks of any size.
struct AsyncBlockReader<Iterator: AsyncIteratorProtocol> where Iterator.Element == Data {
    var iterator: Iterator
    var buffer = Data()
    /// Bytes of `buffer` already returned (dropped in bulk, not per read).
    var consumed = 0
    var finished = false

    init(_ iterator: Iterator) {
        self.iterator = iterator
    }

    mutating func read(_ count: Int) async throws -> Data {
        while buffer.count - consumed < count, !finished {
            if let block = try await iterator.next() { buffer.append(block) } else { finished = true }
        }
        let end = min(buffer.count, consumed + count)
        let taken = buffer.subdata(in: (buffer.startIndex + consumed)..<(buffer.startIndex + end))
        consumed = end
        if consumed == buffer.count || (consumed >= 1 << 20 && consumed * 2 >= buffer.count) {
            buffer = Data(buffer.dropFirst(consumed))
            consumed = 0
        }
        return taken
    }
}
