import Crypto
import Foundation
import KMSClient
import KMSProtocol

/// `kms bench --op encrypt-file|decrypt-file`: kms file v1 throughput on one
/// and two threads against raw AES-256-GCM sealing 64 KiB buffers on one
/// thread over the same number of bytes, in the same run. The format path is
/// measured locally with a random data key (the server's share is one
/// data-key call per file); the input is in the page cache and the output is
/// discarded (`/dev/null`), or, for the disk rows, the input is evicted from
/// the page cache first and the output is a file fsynced at the end, with a
/// plain copy (no encryption) of the same file as the disk's own ceiling.
enum FileBench {
    struct Row: Encodable {
        let name: String
        let threads: Int
        let seconds: Double
        let mibPerSecond: Double
        /// Rate ÷ the raw one-thread AES-GCM rate.
        let ratioToRawAES: Double

        var line: String {
            String(
                format: "%-36@ %d thread%@ %6.0f MiB/s  %.2fx raw AES-GCM  (%.2f s)", name as NSString, threads,
                (threads == 1 ? " " : "s") as NSString, mibPerSecond, ratioToRawAES, seconds)
        }
    }

    struct Report: Encodable {
        let bytes: Int
        let rawAESMiBPerSecond: Double
        /// Raw one-thread AES-GCM *opening* of one warm 64 KiB buffer through
        /// swift-crypto's public API (`SealedBox(nonce:ciphertext:tag:)`, which
        /// copies the ciphertext, then `open`): the ceiling for decrypt.
        var rawOpenMiBPerSecond = 0.0
        var rows: [Row] = []
        /// Peak resident memory of this process after every row (MiB): flat in the file size.
        var peakRSSMiB = 0.0
    }

    static func run(bytes: Int, log: (String) -> Void) async throws -> Report {
        tuneAllocatorForStreaming()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kms-file-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let plain = folder.appendingPathComponent("plain.bin")
        let sealed = folder.appendingPathComponent("sealed.kms")
        try makeInput(plain, bytes: bytes)

        let raw = rawAES(bytes: bytes)
        var report = Report(bytes: bytes, rawAESMiBPerSecond: raw)
        report.rawOpenMiBPerSecond = (0..<3).map { _ in rawOpenOnce(bytes: bytes) }.max() ?? 0
        log(
            String(
                format:
                    "file bench: %.2f GiB, raw AES-256-GCM 64 KiB seal on 1 thread: %.0f MiB/s; raw open (public API, copy included): %.0f MiB/s = %.2fx seal",
                Double(bytes) / 1_073_741_824, raw, report.rawOpenMiBPerSecond, report.rawOpenMiBPerSecond / raw))
        let dataKey = SymmetricKey(size: .bits256)

        /// The best of three runs (a run of 1 GiB takes a fraction of a second on a shared machine);
        /// `prepare` runs before each, untimed.
        func row(
            _ name: String, threads: Int, prepare: () throws -> Void = {}, _ body: () async throws -> Void
        ) async throws {
            var seconds = Double.infinity
            for _ in 0..<3 {
                try prepare()
                let start = ContinuousClock.now
                try await body()
                let elapsed = ContinuousClock.now - start
                seconds = min(
                    seconds, elapsed.inSeconds)
            }
            let rate = Double(bytes) / 1_048_576 / seconds
            let result = Row(
                name: name, threads: threads, seconds: seconds, mibPerSecond: rate, ratioToRawAES: rate / raw)
            report.rows.append(result)
            log("  " + result.line)
        }
        func encrypt(threads: Int, to output: URL, sync: Bool) async throws {
            let source = try FileHandle(forReadingFrom: plain)
            defer { try? source.close() }
            let sink = try FileHandle(forWritingTo: output)
            defer { try? sink.close() }
            // A new header, so a new salt, for every file, as the format asks (a header encrypts one file).
            let header = try FileHeader(wrappedKey: "kms:v1:key_bench:1:AAAA", context: ["bench": "file"])
            let keys = try FileKeys(dataKey: dataKey, header: header)
            try await FileStream.encrypt(
                header: header, keys: keys, threads: threads, read: FileIO.sequentialReader(source),
                write: { try sink.write(contentsOf: $0) })
            if sync { try sink.synchronize() }
        }
        func decrypt(threads: Int, to output: URL, sync: Bool) async throws {
            let source = try FileHandle(forReadingFrom: sealed)
            defer { try? source.close() }
            let sink = try FileHandle(forWritingTo: output)
            defer { try? sink.close() }
            guard let readAt = FileIO.positionalReader(source) else { throw CocoaError(.fileReadUnknown) }
            let (parsed, length, commitment) = try await FileStream.readHeader(read: {
                try FileIO.readExactly(source, $0)
            })
            let opened = try FileKeys(dataKey: dataKey, header: parsed)
            try opened.verify(storedCommitment: commitment)
            try await FileStream.decrypt(
                keys: opened, headerLength: length, fileSize: try source.seekToEnd(), threads: threads,
                readAt: readAt, write: { try sink.write(contentsOf: $0) })
            if sync { try sink.synchronize() }
        }
        let null = URL(fileURLWithPath: "/dev/null")
        _ = FileManager.default.createFile(atPath: sealed.path, contents: nil)
        try await encrypt(threads: 2, to: sealed, sync: false)  // the file to decrypt, and a warm-up
        for threads in [1, 2] {
            try await row("encrypt-file, page cache -> null", threads: threads) {
                try await encrypt(threads: threads, to: null, sync: false)
            }
        }
        for threads in [1, 2] {
            try await row("decrypt-file, page cache -> null", threads: threads) {
                try await decrypt(threads: threads, to: null, sync: false)
            }
        }
        let out = folder.appendingPathComponent("out.bin")
        /// The input read from the disk, not the page cache, into an empty output.
        func fromDisk(_ input: URL) -> () throws -> Void {
            {
                try evictFromPageCache(input)
                _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            }
        }
        try await row("plain copy, disk -> disk (fsync)", threads: 1, prepare: fromDisk(plain)) {
            try copy(plain, to: out)
        }
        for threads in [1, 2] {
            try await row("encrypt-file, disk -> disk (fsync)", threads: threads, prepare: fromDisk(plain)) {
                try await encrypt(threads: threads, to: out, sync: true)
            }
        }
        for threads in [1, 2] {
            try await row("decrypt-file, disk -> disk (fsync)", threads: threads, prepare: fromDisk(sealed)) {
                try await decrypt(threads: threads, to: out, sync: true)
            }
        }
        report.peakRSSMiB = peakRSSMiB()
        log(
            String(
                format: "  peak RSS of this process: %.0f MiB (the file is %.0f MiB)", report.peakRSSMiB,
                Double(bytes) / 1_048_576))
        return report
    }

    /// Writes `url` back and drops its pages from the page cache, so that the
    /// next read of it comes from the disk.
    static func evictFromPageCache(_ url: URL) throws {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        try handle.synchronize()
        _ = posix_fadvise(handle.fileDescriptor, 0, 0, Int32(POSIX_FADV_DONTNEED))
    }

    /// `input` to `output` through the file commands' reader and writes, fsynced, with no
    /// encryption: the disk rows' ceiling.
    static func copy(_ input: URL, to output: URL) throws {
        let source = try FileHandle(forReadingFrom: input)
        defer { try? source.close() }
        let sink = try FileHandle(forWritingTo: output)
        defer { try? sink.close() }
        let reader = FileIO.sequentialReader(source)
        var piece = try reader(FileFormat.chunkSize * 32)
        while !piece.isEmpty {
            try sink.write(contentsOf: piece)
            piece = try reader(FileFormat.chunkSize * 32)
        }
        try sink.synchronize()
    }

    /// VmHWM of /proc/self/status (Linux), in MiB; 0 where there is none.
    static func peakRSSMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kib / 1024
    }

    /// One thread sealing 64 KiB buffers with AES-256-GCM, `bytes` in all: MiB/s (best of three).
    static func rawAES(bytes: Int) -> Double {
        (0..<3).map { _ in rawAESOnce(bytes: bytes) }.max() ?? 0
    }

    static func rawAESOnce(bytes: Int) -> Double {
        let key = SymmetricKey(size: .bits256)
        let buffer = Data(repeating: 0x5A, count: FileFormat.chunkSize)
        let count = max(1, bytes / FileFormat.chunkSize)
        var sink = 0
        let start = ContinuousClock.now
        for _ in 0..<count {
            if let box = try? AES.GCM.seal(buffer, using: key, nonce: AES.GCM.Nonce()) {
                sink &+= Int(box.tag.first ?? 0)
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.inSeconds
        if sink == -1 { printShown("") }
        return Double(count * FileFormat.chunkSize) / 1_048_576 / seconds
    }

    /// One thread opening one sealed 64 KiB buffer again and again as the
    /// decrypt path does (nonce, ciphertext and tag given apart), `bytes` in all: MiB/s.
    static func rawOpenOnce(bytes: Int) -> Double {
        let key = SymmetricKey(size: .bits256)
        let nonce = AES.GCM.Nonce()
        guard
            let sealed = try? AES.GCM.seal(Data(repeating: 0x5A, count: FileFormat.chunkSize), using: key, nonce: nonce)
        else { return 0 }
        let ciphertext = sealed.ciphertext
        let tag = sealed.tag
        let count = max(1, bytes / FileFormat.chunkSize)
        var sink = 0
        let start = ContinuousClock.now
        for _ in 0..<count {
            if let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag),
                let plaintext = try? AES.GCM.open(box, using: key)
            {
                sink &+= Int(plaintext.first ?? 0)
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.inSeconds
        if sink == -1 { printShown("") }
        return Double(count * FileFormat.chunkSize) / 1_048_576 / seconds
    }

    /// A file of `bytes` (a random MiB repeated), written once and read once so it sits in the page cache.
    static func makeInput(_ url: URL, bytes: Int) throws {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        let block = Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).repeated(to: 1 << 20)
        var left = bytes
        while left > 0 {
            try handle.write(contentsOf: block.prefix(left))
            left -= min(left, block.count)
        }
        try handle.close()
        let reader = try FileHandle(forReadingFrom: url)
        while let chunk = try reader.read(upToCount: 1 << 22), !chunk.isEmpty {}
        try reader.close()
    }
}

extension Data {
    fileprivate func repeated(to size: Int) -> Data {
        var out = Data(capacity: size)
        while out.count < size { out.append(prefix(size - out.count)) }
        return out
    }
}
