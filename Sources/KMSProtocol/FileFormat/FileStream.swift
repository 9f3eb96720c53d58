public import Foundation

/// Streams whole files through the format: encryption with one chunk of
/// look-ahead (a full chunk is final only if the input ends there), and
/// decryption in section 4's order, each verified chunk released at once.
///
/// Chunks are independent, so a batch of them is sealed or opened on up to
/// `threads` tasks at once; memory stays at a few chunks per thread whatever
/// the file size. I/O is the caller's: `read(n)` returns up to n bytes, and
/// empty only at the end of the input (a short read is completed by reading
/// again: a reader that gives what a pipe has must not end the file early);
/// `write` takes bytes in order.
public enum FileStream {
    public typealias Read = (Int) async throws -> Data
    public typealias Write = (Data) async throws -> Void

    /// Chunks per thread in one batch.
    static let chunksPerThread = 32

    /// Writes header ‖ commitment ‖ chunks of everything `read` gives;
    /// returns the plaintext size. Past 2^32 − 1 chunks: `too_large`. `header` encrypts this one file: a
    /// header that encrypted one before, or was read from a file, is `header_reused` before anything is
    /// written (its salt would give this file the other's payload key and nonces).
    @discardableResult
    public static func encrypt(
        header: FileHeader, keys: FileKeys, threads: Int = 2, read: Read, write: Write,
        progress: ((UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        guard keys.header == header else {
            throw FileFormatError(
                .headerReused,
                "these keys were derived from another header: derive them from this file's own (FileKeys(dataKey:header:))"
            )
        }
        try header.claimForNewFile()
        var prologue = header.encoded
        prologue.append(keys.commitment)
        try await write(prologue)
        var total: UInt64 = 0
        // A full chunk is final only if the input ends right after it.
        try await pipeline(
            threads: threads, blockSize: FileFormat.chunkSize, first: try await read(FileFormat.chunkSize), read: read,
            transform: { index, plaintext, final throws(FileFormatError) in
                try keys.seal(plaintext, index: index, final: final)
            },
            consume: { piece in
                try await write(piece)
                total += UInt64(piece.count - FileFormat.tagSize)
            },
            afterBatch: { progress?(total) })
        return total
    }

    /// `start` completed to `count` bytes by further reads, unless the input
    /// ends first (an empty read) or `start` is already the end (empty).
    static func completed(_ start: Data, to count: Int, _ read: Read) async throws -> Data {
        var data = start
        while !data.isEmpty, data.count < count {
            let more = try await read(count - data.count)
            if more.isEmpty { break }
            data.append(more)
        }
        return data
    }

    /// Steps 1 and 2: reads the header and the stored commitment.
    public static func readHeader(read: Read) async throws -> (header: FileHeader, length: Int, commitment: Data) {
        var prefix = try await completed(try await read(10), to: 10, read)
        if prefix.count == 10, prefix.starts(with: FileFormat.magic),
            prefix[prefix.startIndex + 7] == FileFormat.version
        {
            let length = Int(prefix[prefix.startIndex + 8]) << 8 | Int(prefix[prefix.startIndex + 9])
            if (FileFormat.minHeaderLength...FileFormat.maxHeaderLength).contains(length) {
                let rest = length + FileFormat.commitmentSize - 10
                prefix.append(try await completed(try await read(rest), to: rest, read))
            }
        }
        return try FileHeader.parse(prefix)
    }

    /// Step 4 after the header, commitment and key check: opens every piece
    /// in order, writing each verified chunk's plaintext; returns the size.
    /// `read` must return this process's own memory (plain reads, not a
    /// mapping of the file): chunks are opened where they lie.
    @discardableResult
    public static func decrypt(
        keys: FileKeys, threads: Int = 2, read: Read, write: Write, progress: ((UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        let first = try await read(FileFormat.sealedChunkSize)
        guard !first.isEmpty else { throw FileFormatError(.truncated, "the file has no chunk") }
        var total: UInt64 = 0
        try await pipeline(
            threads: threads, blockSize: FileFormat.sealedChunkSize, first: first, read: read,
            transform: { index, piece, isLast throws(FileFormatError) in
                try keys.openPiece(piece, index: index, isLast: isLast)
            },
            consume: { plaintext in
                try await write(plaintext)
                total += UInt64(plaintext.count)
            },
            afterBatch: { progress?(total) })
        return total
    }

    /// Step 4 for a seekable file of `fileSize` bytes whose header (of
    /// `headerLength` bytes) passed steps 1 to 3: the same checks, order,
    /// errors and release as `decrypt(keys:threads:read:write:progress:)`
    /// (for a file that does not change meanwhile), but each task reads its
    /// own run of up to 32 chunks with one `readAt(offset, count)`, which
    /// returns fewer bytes only where the file ends and throws when the read
    /// fails. `readAt` must return this process's own memory (not a mapping
    /// of the file: chunks are opened where they lie, `AESGCM256`); the
    /// read is then the one copy of the file, made on every thread.
    @discardableResult
    public static func decrypt(
        keys: FileKeys, headerLength: Int, fileSize: UInt64, threads: Int = 2,
        readAt: @escaping @Sendable (UInt64, Int) throws -> Data, write: Write, progress: ((UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        let layout = try FileLayout(piecesOf: headerLength, fileSize: fileSize)
        let last = layout.chunkCount - 1
        let lanes = UInt64(min(max(1, threads), maxThreads))
        let batchSize = lanes * UInt64(chunksPerThread)
        /// Chunks `run`, read with one `readAt` and opened in order; stops at the first failure.
        @Sendable func open(_ run: ClosedRange<UInt64>) -> [Result<Data, any Error>] {
            if Task.isCancelled { return [.failure(CancellationError())] }
            let from = layout.offset(ofChunk: run.lowerBound)
            let bytes: Data
            do {
                bytes = try readAt(
                    from, Int(layout.offset(ofChunk: run.upperBound) - from) + layout.length(ofChunk: run.upperBound))
            } catch {
                return [.failure(error)]
            }
            var results: [Result<Data, any Error>] = []
            for index in run {
                let start = bytes.startIndex + Int(layout.offset(ofChunk: index) - from)
                let end = start + layout.length(ofChunk: index)
                results.append(
                    Result { () throws(FileFormatError) in
                        guard end <= bytes.endIndex else {
                            throw FileFormatError(.truncated, "the file is shorter than it was a moment ago")
                        }
                        return try keys.openPiece(bytes[start..<end], index: index, isLast: index == last)
                    }.mapError { $0 as any Error })
                if case .failure = results[results.count - 1] { break }
            }
            return results
        }
        func batch(from first: UInt64) -> Task<[Result<Data, any Error>], Never>? {
            guard first <= last else { return nil }
            let count = min(batchSize, last - first + 1)
            let perLane = (count + lanes - 1) / lanes
            let runs = stride(from: first, to: first + count, by: Int(perLane)).map {
                $0...min(first + count - 1, $0 + perLane - 1)
            }
            // One thread means one, as in `pipeline`: the batch is done here, not beside the consumer.
            if runs.count == 1, threads <= 1 {
                let results = open(runs[0])
                return Task { results }
            }
            return Task {
                await withTaskGroup(of: (Int, [Result<Data, any Error>]).self) { group in
                    for (lane, run) in runs.enumerated() { group.addTask { (lane, open(run)) } }
                    var byLane = [[Result<Data, any Error>]](repeating: [], count: runs.count)
                    for await (lane, results) in group { byLane[lane] = results }
                    return byLane.flatMap { $0 }
                }
            }
        }
        var total: UInt64 = 0
        var next = batch(from: 0)
        var first: UInt64 = 0
        while let inFlight = next {
            first += batchSize
            next = Task.isCancelled ? nil : batch(from: first)
            do {
                for result in try await valueUnlessCancelled(inFlight) {
                    let plaintext = try result.get()
                    try await write(plaintext)
                    total += UInt64(plaintext.count)
                }
            } catch {
                // Nothing of ours may outlive the call (the caller closes the file next).
                next?.cancel()
                _ = await next?.value
                throw error
            }
            progress?(total)
        }
        return total
    }

    /// A batch's results, or `CancellationError` when the caller was cancelled: the batch's own task,
    /// which does not inherit the caller's cancellation, is cancelled too (its items stop at the next
    /// one) and is awaited, so nothing of ours outlives the call. Before, a cancelled caller sealed or
    /// opened the rest of the file (a review).
    static func valueUnlessCancelled<T: Sendable>(_ task: Task<T, Never>) async throws -> T {
        let value = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        try Task.checkCancellation()
        return value
    }

    /// The most tasks a batch is split across (memory is 2 batches × 32 chunks per task).
    static let maxThreads = 64

    /// Blocks of `blockSize` bytes, read with one block of look-ahead (a
    /// block is the last only if the input ends right after it), in batches
    /// through `transform` on up to `threads` tasks, one batch ahead of the
    /// consumer: while batch k's results are consumed (in order, stopping at
    /// the first failure, so nothing after a failed block is released), batch
    /// k + 1 is already being sealed or opened.
    static func pipeline(
        threads: Int, blockSize: Int, first: Data, read: Read,
        transform: @escaping @Sendable (UInt64, Data, Bool) throws(FileFormatError) -> Data,
        consume: (Data) async throws -> Void, afterBatch: () -> Void
    ) async throws {
        // Bounded as whole-file decryption is: memory is about three batches (a review found
        // `threads: .max` overflowing here, and a thousand threads buffering gigabytes).
        let threads = min(max(1, threads), maxThreads)
        let batchSize = threads * chunksPerThread
        // A short block is the last one, so it must not be short merely because a read was.
        func filled(_ block: Data) async throws -> Data { try await completed(block, to: blockSize, read) }
        var current: Data? = try await filled(first)
        func nextBatch() async throws -> [(block: Data, isLast: Bool)] {
            var batch: [(block: Data, isLast: Bool)] = []
            while batch.count < batchSize, let block = current {
                let next = block.count < blockSize ? Data() : try await filled(try await read(blockSize))
                batch.append((block, next.isEmpty))
                current = next.isEmpty ? nil : next
            }
            return batch
        }
        var index: UInt64 = 0
        var inFlight: Task<[Result<Data, FileFormatError>], Never>?
        while true {
            let batch: [(block: Data, isLast: Bool)]
            do {
                // A cancelled caller reads no further (nothing after the batch in flight is started).
                try Task.checkCancellation()
                batch = try await nextBatch()
            } catch {
                // The batch before the failed read is released first (section 4: the first failure in
                // order), and nothing of ours outlives the call (a review found it left running).
                if let inFlight {
                    for result in try await valueUnlessCancelled(inFlight) { try await consume(try result.get()) }
                }
                throw error
            }
            var next: Task<[Result<Data, FileFormatError>], Never>?
            if !batch.isEmpty {
                let start = index
                index += UInt64(batch.count)
                let work: @Sendable () async -> [Result<Data, FileFormatError>] = {
                    await parallelMap(batch, threads: threads) { offset, item throws(FileFormatError) in
                        try transform(start + UInt64(offset), item.block, item.isLast)
                    }
                }
                // One thread means one: the batch is done here, not beside the consumer.
                if threads <= 1 {
                    let results = await work()
                    next = Task { results }
                } else {
                    next = Task { await work() }
                }
            }
            if let inFlight {
                do {
                    for result in try await valueUnlessCancelled(inFlight) { try await consume(try result.get()) }
                } catch {
                    next?.cancel()
                    _ = await next?.value
                    throw error
                }
                afterBatch()
            }
            guard let next else { return }
            inFlight = next
        }
    }

    /// Random access (section 5), after steps 1 to 3: the layout checks, the
    /// last chunk opened as final (only then is the plaintext size authentic),
    /// then the chunks holding bytes `start...end` (END clamped), written in
    /// order. `readAt(offset, count)` reads file bytes into this process's own
    /// memory (not a mapping: chunks are opened where they lie). Returns the
    /// range given.
    @discardableResult
    public static func decryptRange(
        keys: FileKeys, layout: FileLayout, start: UInt64, end: UInt64,
        readAt: (UInt64, Int) async throws -> Data, write: Write
    ) async throws -> ClosedRange<UInt64> {
        let last = layout.chunkCount - 1
        func chunk(_ index: UInt64) async throws -> Data {
            let piece = try await readAt(layout.offset(ofChunk: index), layout.length(ofChunk: index))
            guard piece.count == layout.length(ofChunk: index) else {
                throw FileFormatError(.truncated, "the file is shorter than it was a moment ago")
            }
            return try keys.openPiece(piece, index: index, isLast: index == last)
        }
        let lastPlaintext = try await chunk(last)
        let range = try layout.clamp(start: start, end: end)
        let size = UInt64(FileFormat.chunkSize)
        for index in layout.chunks(holding: range) {
            let plaintext = index == last ? lastPlaintext : try await chunk(index)
            let from = Int(max(range.lowerBound, index * size) - index * size)
            let to = Int(min(range.upperBound, index * size + size - 1) - index * size)
            try await write(plaintext.subdata(in: (plaintext.startIndex + from)..<(plaintext.startIndex + to + 1)))
        }
        return range
    }

    /// `transform` over `items` on up to `threads` tasks, results in order.
    /// The caller consumes them in order and stops at the first failure, so
    /// a failure later in a batch never hides an earlier one.
    static let notProcessed = FileFormatError(.chunkAuthFailed, "a chunk was not processed")

    static func parallelMap<Item: Sendable>(
        _ items: [Item], threads: Int, _ transform: @escaping @Sendable (Int, Item) throws(FileFormatError) -> Data
    ) async -> [Result<Data, FileFormatError>] {
        func run(_ offset: Int) -> Result<Data, FileFormatError> {
            Result { () throws(FileFormatError) in try transform(offset, items[offset]) }
        }
        if threads <= 1 || items.count == 1 { return items.indices.map(run) }
        let lanes = min(threads, items.count)
        return await withTaskGroup(of: [(Int, Result<Data, FileFormatError>)].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    stride(from: lane, to: items.count, by: lanes).map { offset in
                        // A cancelled batch (its consumer failed) stops sealing or opening at once.
                        guard !Task.isCancelled else { return (offset, .failure(Self.notProcessed)) }
                        return (offset, Result { () throws(FileFormatError) in try transform(offset, items[offset]) })
                    }
                }
            }
            var all = [Result<Data, FileFormatError>](repeating: .failure(Self.notProcessed), count: items.count)
            for await lane in group { for (offset, result) in lane { all[offset] = result } }
            return all
        }
    }
}
