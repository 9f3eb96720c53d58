import ArgumentParser
import CProcessHardening
import Foundation
import KMSClient
import KMSProtocol
import Synchronization

#if canImport(Glibc)
    /// glibc's `mallopt` (malloc.h is not part of the Glibc module).
    @_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// Keeps glibc from returning freed 64 KiB chunk buffers to the kernel after
/// every batch (trimming the heap top, then faulting fresh zeroed pages back
/// in): with chunks freed on another thread than the one that allocated them,
/// that churn cost more system time than the encryption. Process-wide, so
/// only the file commands and the file benchmark call it.
func tuneAllocatorForStreaming() {
    #if canImport(Glibc)
        _ = glibcMallopt(-1, 256 << 20)  // M_TRIM_THRESHOLD
        _ = glibcMallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD
    #endif
}

/// Where a file command reads and writes: a path, or `-` for standard input
/// and output. A path output is written to a temporary file in its folder and
/// renamed over it only on success.
struct FileEndpoints {
    let input: String
    let output: String

    /// `path`, or standard input for `-`; one that cannot be opened, or a
    /// folder (which opens, then fails on read), is a usage error (64) named `io_error`.
    static func open(_ path: String) throws -> FileHandle {
        guard path != "-" else {
            // Found before any work, as a path's would be (a review: a folder or a closed standard input
            // failed only once the work had begun, exit 1).
            var info = stat()
            guard fstat(STDIN_FILENO, &info) == 0, (info.st_mode & S_IFMT) != S_IFDIR,
                fcntl(STDIN_FILENO, F_GETFL) & O_ACCMODE != O_WRONLY
            else { throw ValidationError("io_error: standard input cannot be read (closed, or a folder)") }
            return FileHandle.standardInput
        }
        guard !path.isEmpty else { throw ValidationError("io_error: an empty path names no file") }
        if isFolder(path) { throw ValidationError("io_error: \(path) is a folder, not a file") }
        do {
            return try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError(
                "io_error: cannot read \(path): \((error as? CocoaError).map(posixReason) ?? "\(error)")")
        }
    }

    /// Whether `path` (or standard input, for `-`) can be read by position: a regular file, and for
    /// standard input one that stands at its start (a range counts from the file's first byte). A
    /// path that cannot be examined counts as seekable here, so that opening it names the real failure.
    static func isSeekable(_ path: String) -> Bool {
        var info = stat()
        guard (path == "-" ? fstat(STDIN_FILENO, &info) : stat(path, &info)) == 0 else { return path != "-" }
        return (info.st_mode & S_IFMT) == S_IFREG && (path != "-" || lseek(STDIN_FILENO, 0, SEEK_CUR) == 0)
    }

    /// Refuses standard output that is the input file itself (`encrypt-file f - >> f`): the input is
    /// read past its first size, so the output fed the input until the disk was full (a review), as
    /// `cat f >> f` would but for its own refusal. A path output onto its input is safe: it is written
    /// to a temporary file and renamed over it.
    static func refuseOutputOntoInput(_ source: FileHandle) throws {
        var input = stat()
        guard fstat(source.fileDescriptor, &input) == 0, (input.st_mode & S_IFMT) == S_IFREG,
            let output = standardOutputFile(), input.st_dev == output.device, input.st_ino == output.inode
        else { return }
        throw ValidationError("io_error: standard output is the input file itself")
    }

    static func isFolder(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
    }

    /// Refuses `-` when standard output is a terminal, before any work: a file's bytes or a ciphertext
    /// there are binary it would act on. `withStreams` checks again, for a verb that forgets to.
    func refuseTerminalOutput() throws {
        // file-format-v1 section 8: every failure of a file verb names its code.
        if output == "-", isatty(STDOUT_FILENO) == 1 { throw ValidationError("io_error: \(terminalRefusal)") }
    }

    /// `privateInput`: plain reads into this process's own memory, not a mapping, as decryption must.
    func withStreams<T>(
        privateInput: Bool = false, _ body: (FileStream.Read, FileStream.Write, FileHandle) async throws -> T
    ) async throws -> T {
        tuneAllocatorForStreaming()
        let source = try Self.open(input)
        defer { if input != "-" { try? source.close() } }
        let reader = privateInput ? { try FileIO.readExactly(source, $0) } : FileIO.sequentialReader(source)
        let read: FileStream.Read = { try reader($0) }
        if output == "-" {
            try refuseTerminalOutput()
            try Self.refuseOutputOntoInput(source)
            // Nothing to remove, but a shortened mapped input is still `io_error`, not a crash.
            let cleanup = InterruptCleanup(removing: "", everySignal: false)
            defer { cleanup.cancel() }
            return try await body(read, { try writeToStandardOutput($0) }, source)
        }
        // Made absolute by hand: Foundation resolves a relative path's `..` by its text (`link/../x` became
        // `./x`, where the kernel follows the link first), so the output went elsewhere than a `cp` would
        // put it (a review); an absolute path is kept as written.
        let here = FileManager.default.currentDirectoryPath
        // A current folder that was removed reads as "": the output would have gone to `/` (a review).
        guard output.hasPrefix("/") || here.hasPrefix("/") else {
            throw ValidationError("io_error: the current folder no longer exists: give OUT as an absolute path")
        }
        let destination = URL(fileURLWithPath: output.hasPrefix("/") ? output : here + "/" + output)
        // Refused before the server is asked for a key or any work is done: the final rename would fail.
        if output.isEmpty || Self.isFolder(output) {
            throw ValidationError("io_error: \(output.isEmpty ? "an empty path" : output) is a folder, not a file")
        }
        if output.hasSuffix("/") {
            throw ValidationError("io_error: \(output) ends in /, so it names a folder, not a file")
        }
        if let problem = AtomicOutputFile.nameProblem(destination) {
            throw ValidationError("io_error: \(output) \(problem)")
        }
        // A device, a pipe or a socket (or a link to one, such as /dev/stdout) would be replaced by a
        // regular file holding the output (a review found `decrypt-file x.kms /dev/stdout` did that).
        if let problem = AtomicOutputFile.unusableDestination(destination) {
            throw ValidationError("io_error: \(output) \(problem); give - to write to standard output")
        }
        guard access(destination.deletingLastPathComponent().path, W_OK) == 0 else {
            throw ValidationError(
                "io_error: cannot write in the folder of \(output): \(String(cString: strerror(errno)))")
        }
        // Interrupted (Ctrl-C, SIGTERM, SIGHUP, any signal `InterruptCleanup` handles) before the output is
        // committed, final fsync included:
        // remove the partial temporary file, then exit.
        // A write that fails (a full disk, a file size limit) names the output: "io_error: No space left on
        // device" alone did not say which file (a backup author's walkthrough). So does the final fsync.
        let output = self.output
        let finished = Mutex(false)
        let interrupts = Mutex<(InterruptCleanup, String)?>(nil)
        do {
            return try await AtomicOutputFile.writing(
                destination,
                whileOpen: { temporary in
                    let cleanup = InterruptCleanup(removing: temporary.path, output: output, at: destination.path)
                    interrupts.withLock { $0 = (cleanup, temporary.path) }
                    return { cleanup.cancel() }
                },
                exclusively: { step in
                    guard let (cleanup, _) = interrupts.withLock({ $0 }) else { return try step() }
                    try cleanup.exclusively(step)
                }
            ) { sink in
                if let (cleanup, temporary) = interrupts.withLock({ $0 }) { cleanup.markCreated(temporary) }
                let result = try await body(
                    read,
                    { data in
                        do { try sink.write(data) } catch { throw Self.writeFailure(error, output: output) ?? error }
                    }, source)
                finished.withLock { $0 = true }
                return result
            }
        } catch let refused as AtomicOutputFile.NotCreated {
            // Before any work (the output is made first), and naming where (a probe: `io_error: Permission
            // denied`, exit 1, for an output under /sys); a full disk or too many open files stays exit 1.
            guard refused.isThePath else { throw CLIFailure(message: "io_error: \(refused)") }
            throw ValidationError("io_error: \(refused)")
        } catch {
            if finished.withLock({ $0 }), let named = Self.writeFailure(error, output: output) { throw named }
            throw error
        }
    }

    /// A failed write or sync of the output, named (nil: not such a failure). Its status stays 1: the
    /// work had begun.
    static func writeFailure(_ error: any Error, output: String) -> CLIFailure? {
        let reason: String
        switch error {
        case let failure as POSIXError: reason = String(cString: strerror(failure.code.rawValue))
        case let failure as CocoaError where failure.userInfo[NSFilePathErrorKey] == nil && failure.filePath == nil:
            reason = posixReason(failure)
        default: return nil
        }
        return CLIFailure(message: "io_error: cannot write \(output): \(reason)")
    }

    /// The input's size when it is a regular file (for progress and ranges).
    var inputSize: UInt64? {
        guard input != "-", let attributes = try? FileManager.default.attributesOfItem(atPath: input),
            attributes[.type] as? FileAttributeType == .typeRegular
        else { return nil }
        return (attributes[.size] as? NSNumber)?.uint64Value
    }
}

/// While a temporary output file exists, the signals that end a process by
/// default and that a user or a system sends (SIGINT, SIGTERM, SIGHUP for a
/// closed terminal, SIGQUIT for Ctrl-\, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU,
/// SIGXFSZ, SIGVTALRM) remove it before the process exits with 128 + the
/// signal's number, so an interrupted run leaves no partial plaintext behind (a
/// probe left one with SIGQUIT when only the first three were handled). They go
/// through dispatch sources: every thread of the process blocks them, and a C
/// handler was not run in time under load. SIGPROF is left out (a review found
/// libdispatch's forwarding of it looping). SIGBUS (a mapped input shortened by
/// another process while encryption reads it) is a fault, handled in C
/// (`kms_remove_on_fault`): the file is removed and the exit status is 1, naming
/// `io_error`. Standard output as the output has no file: only SIGBUS is handled.
/// A signal ignored when the process started (`nohup` ignores SIGHUP, a
/// script's background job SIGINT and SIGQUIT) stays ignored, before and after:
/// a review found `nohup kms decrypt-file` lost its output at logout.
final class InterruptCleanup: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    /// The signals handled here, which `cancel` gives back their default action.
    private let handled: [Int32]
    static let signals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGXCPU, SIGXFSZ, SIGVTALRM]

    /// The temporary file's identity once made (`markCreated`), to tell at a signal whether the rename
    /// put it in place.
    private let created = CreatedFile()

    /// Held by a signal's handler from its `unlink` to its exit, and by the output's creation and rename
    /// (`exclusively`): the handler decided, then wrote, then exited, and the main thread could make the
    /// temporary file after the handler had found none, or rename it while a blocked standard error held the
    /// handler after it said "nothing was written" (a review). The handlers run on dispatch's threads, not
    /// in a signal's context, so a lock is safe there.
    private let ending = EndingLock()

    /// `output`: the destination's path as the user named it, for the line that says the run was
    /// interrupted (file-format-v1 section 8: every failure names its code on standard error; a backup
    /// author's walkthrough saw a killed run end with nothing said).
    /// `destinationPath`: the path the rename writes, to look at.
    init(removing path: String, output: String = "", at destinationPath: String = "", everySignal: Bool = true) {
        _ = kms_remove_on_fault(path)
        handled = everySignal ? Self.signals.filter { kms_signal_ignored($0) == 0 } : []
        let (created, ending) = (self.created, self.ending)
        sources = handled.map { signalNumber in
            let status = 128 + signalNumber
            let signalName: ShownText = "signal \(signalNumber) (\(String(cString: strsignal(signalNumber))))"
            let before: ShownText =
                "Error: interrupted: \(signalName) came before \(output) was complete: nothing was written, and an existing \(output) is as it was\n"
            let after: ShownText =
                "Error: interrupted: \(signalName) came as \(output) was put in place: it is complete, but the sync of its folder may not have finished\n"
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                ending.holdUntilExit {
                    // The unlink decides: once it succeeds the rename can no longer happen; when the file is gone
                    // already, the rename may have put it in place (a review: "as it was" was said of an OUT
                    // already replaced, with IN == OUT the original gone). Never released: the process ends.
                    let removed = unlink(path) == 0
                    writeToStandardError(!removed && created.isAt(destinationPath) ? after : before)
                    _exit(status)
                }
            }
            source.resume()
            return source
        }
    }

    /// Records the temporary file's identity, once it exists.
    func markCreated(_ path: String) { created.record(path) }

    /// Runs `step` (the output's creation or rename) where no signal's handler is between its decision and its
    /// exit; after a handler took the lock it never returns, the process ending.
    func exclusively(_ step: () throws -> Void) throws { try ending.hold(step) }

    /// A lock a handler takes and never gives back (a class: `Mutex` cannot be captured by the handlers).
    final class EndingLock: Sendable {
        private let mutex = Mutex(())
        func hold(_ body: () throws -> Void) throws { try mutex.withLock { _ in try body() } }
        func holdUntilExit(_ body: () -> Never) -> Never { mutex.withLock { _ in body() } }
    }

    func cancel() {
        for source in sources { source.cancel() }
        for signalNumber in handled { signal(signalNumber, SIG_DFL) }
        kms_keep_on_fault()
    }
}

/// A file's device and inode, recorded once, compared with what a path names now.
final class CreatedFile: Sendable {
    private let identity = Mutex<(dev_t, ino_t)?>(nil)

    func record(_ path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return }
        identity.withLock { $0 = (status.st_dev, status.st_ino) }
    }

    func isAt(_ path: String) -> Bool {
        guard let (device, inode) = identity.withLock({ $0 }) else { return false }
        var status = stat()
        return stat(path, &status) == 0 && status.st_dev == device && status.st_ino == inode
    }
}

/// A progress line on a terminal (bytes, rate, ETA), quiet when stderr is not one.
final class ProgressLine {
    let total: UInt64?
    let start = ContinuousClock.now
    var last = ContinuousClock.now
    let enabled: Bool

    init(total: UInt64?) {
        self.total = total
        enabled = isatty(STDERR_FILENO) == 1 && (total ?? .max) >= 8 << 20
    }

    func update(_ done: UInt64) {
        guard enabled, ContinuousClock.now - last >= .milliseconds(250) else { return }
        last = ContinuousClock.now
        let seconds = max(0.001, (ContinuousClock.now - start).inSeconds)
        let rate = Double(done) / seconds
        var line: ShownText = "\r\(Self.size(Double(done)))"
        if let total {
            let eta = rate > 0 ? Double(total - min(total, done)) / rate : 0
            line += " of \(Self.size(Double(total))), \(Self.size(rate))/s, ETA \(Int(eta.rounded())) s   "
        } else {
            line += ", \(Self.size(rate))/s   "
        }
        writeToStandardError(line)
    }

    func finish() {
        if enabled { writeToStandardError("\n") }
    }

    static func size(_ bytes: Double) -> String {
        bytes >= 1_073_741_824
            ? String(format: "%.2f GiB", bytes / 1_073_741_824) : String(format: "%.1f MiB", bytes / 1_048_576)
    }
}

/// `kms encrypt-file`
struct EncryptFileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt-file",
        abstract:
            "Encrypt a file locally under a fresh data key of KEY (kms file v1); the server sees only the data key.",
        discussion: "IN and OUT may be - (standard input / output). The context is bound to the file and to the key.")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "Key id or alias.") var key: String
    @Option(name: .long, help: "A context pair k=v (repeatable; the first = splits).") var context: [String] = []
    @Option(name: .long, help: "Chunks sealed at once (default: one per core).") var threads = KMSClient
        .defaultFileThreads
    @Flag(
        help:
            "Leave out the line that says what was done (cron mails any output); failures, warnings and notes still go to standard error."
    )
    var quiet = false
    @Argument(help: "The file to encrypt, or -.") var input: String
    @Argument(help: "Where to write the encrypted file, or -.") var output: String

    func validate() throws { try client.refuseJSON("encrypt-file", writes: "a file") }

    func run() async throws {
        let pairs = try FileContext.parse(context)
        let endpoints = FileEndpoints(input: input, output: output)
        try endpoints.refuseTerminalOutput()
        let progress = ProgressLine(total: endpoints.inputSize)
        let used = try await withClient(client) { kms in
            try await endpoints.withStreams { read, write, _ in
                try await kms.encryptStream(
                    key: key, context: pairs, threads: FileContext.clampThreads(threads), read: read, write: write,
                    progress: progress.update)
            }
        }
        progress.finish()
        if output != "-", !quiet {
            writeToStandardError("encrypted \(input) under \(used.keyId) v\(used.version)\n")
        }
    }
}

/// `kms decrypt-file`
struct DecryptFileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt-file",
        abstract: "Decrypt a kms file v1; the server unwraps its data key under the file's context.",
        discussion: """
            IN and OUT may be - (--range needs a seekable IN). A failure exits non-zero naming its code \
            (bad_magic, truncated, chunk_auth_failed, …) and leaves no OUT file. With OUT -, the chunks \
            before the failure were already written, each verified: discard the output on a non-zero exit.
            """)
    @OptionGroup var client: ClientOptions
    // Unconditional: `--range -5` is a malformed range (`range_invalid`), not a missing value.
    @Option(
        name: .long, parsing: .unconditional,
        help: "Only plaintext bytes START-END (inclusive; END past the end is clamped).")
    var range: String?
    @Option(name: .long, help: "Chunks opened at once (default: one per core).") var threads = KMSClient
        .defaultFileThreads
    @Option(
        name: .long,
        help:
            "The context the file was encrypted with, k=v (repeatable): any other is context_mismatch, before the server is asked (a file swapped for another under the same key decrypts under its own context otherwise)."
    )
    var context: [String] = []
    // Without either, any context is taken; an empty --context list cannot say "none".
    @Flag(
        name: .customLong("no-context"),
        help: "The file was encrypted with no context: one with a context is context_mismatch.")
    var noContext = false
    @Option(
        name: .long,
        help:
            "The key the file was encrypted under, a key id or an alias this client may read: a file under any other is key_mismatch, before its data key is asked for (a client that may use another key you decrypt with can make a file with your context)."
    )
    var key: String?
    @Flag(
        help:
            "Leave out the line that says what was done (cron mails any output); failures, warnings and notes still go to standard error."
    )
    var quiet = false
    @Argument(help: "The encrypted file, or -.") var input: String
    @Argument(help: "Where to write the plaintext, or -.") var output: String

    func validate() throws {
        try client.refuseJSON("decrypt-file", writes: "a file")
        if noContext, !context.isEmpty { throw ValidationError("--no-context and --context cannot be used together") }
    }

    func run() async throws {
        // A file's bytes are whatever its encrypter chose: on a terminal its control characters would act
        // (a review finding, as for `kms decrypt`), and streaming leaves no chance to look first.
        try FileEndpoints(input: input, output: output).refuseTerminalOutput()
        let bounds = try range.map(FileContext.parseRange)
        let expected = noContext ? [:] : context.isEmpty ? nil : try FileContext.parse(context)
        if bounds != nil, !FileEndpoints.isSeekable(input) {
            writeToStandardError(
                "Error: range_invalid: --range needs a seekable input: a regular file (standard input at its start), not a pipe or device\n"
            )
            throw ExitCode(2)
        }
        let endpoints = FileEndpoints(input: input, output: output)
        let progress = ProgressLine(total: endpoints.inputSize)
        let header = try await withClient(client) { kms in
            try await endpoints.withStreams(privateInput: true) { read, write, source in
                let threads = FileContext.clampThreads(threads)
                if let bounds {
                    return try await kms.decryptRange(
                        source, start: bounds.start, end: bounds.end, expectedContext: expected, expectedKey: key,
                        write: write)
                }
                // A named regular file is read by position; `-` (even a redirected file) as a stream.
                if input != "-",
                    let header = try await kms.decryptSeekable(
                        source, threads: threads, expectedContext: expected, expectedKey: key, write: write,
                        progress: progress.update)
                {
                    return header
                }
                return try await kms.decryptStream(
                    threads: threads, expectedContext: expected, expectedKey: key, read: read, write: write,
                    progress: progress.update)
            }
        }
        progress.finish()
        // What it was under, as encrypt-file and rewrap-file say (a review: a file made under another key with
        // the context expected decrypted without a word). The header was authenticated by the unwrap; the
        // context is still escaped, as inspect-file shows it.
        if !quiet, let named = NativeCiphertext.keyAndVersion(header.wrappedKey) {
            let context = header.context.map {
                TerminalText.escaped($0.key, escapingIgnorables: true) + "="
                    + TerminalText.escaped($0.value, escapingIgnorables: true)
            }
            writeToStandardError(
                "decrypted \(TerminalText.escaped(input)) under \(named.keyId) v\(named.version)"
                    + (context.isEmpty ? ", no context" : ", context \(context.joined(separator: " "))") + "\n")
        }
    }
}

/// `kms rewrap-file`
struct RewrapFileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rewrap-file",
        abstract:
            "Re-wrap a file's data key under its key's active version (after a rotation, within the grace period).",
        discussion: "Only the header changes; the commitment and chunks are copied unchanged. Nothing is decrypted.")
    @OptionGroup var client: ClientOptions
    @Flag(
        help:
            "Leave out the line that says what was done (cron mails any output); failures, warnings and notes still go to standard error."
    )
    var quiet = false
    @Argument(help: "The encrypted file, or -.") var input: String
    @Argument(help: "Where to write the rewrapped file, or -.") var output: String

    func validate() throws { try client.refuseJSON("rewrap-file", writes: "a file") }

    func run() async throws {
        let endpoints = FileEndpoints(input: input, output: output)
        try endpoints.refuseTerminalOutput()
        let used = try await withClient(client) { kms in
            try await endpoints.withStreams { read, write, _ in try await kms.rewrapStream(read: read, write: write) }
        }
        if output != "-", !quiet {
            writeToStandardError("rewrapped \(input) under \(used.keyId) v\(used.version)\n")
        }
    }
}

/// `kms inspect-file`
struct InspectFileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-file",
        abstract: "Show a kms file's key, version, context and sizes (no server needed, nothing decrypted).")
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Argument(help: "The encrypted file, or - for standard input.") var input: String

    struct Report: Encodable {
        let keyId: String?
        let version: Int?
        let context: [Pair]
        let headerLength: Int
        let fileSize: UInt64
        let chunks: UInt64
        /// What the layout implies; authentic only once the last chunk opens as
        /// final (file-format-v1 section 5), which needs the data key.
        let unverifiedPlaintextSize: UInt64

        struct Pair: Encodable {
            let key: String
            let value: String
        }
    }

    func run() async throws {
        let handle = try FileEndpoints.open(input)
        defer { if input != "-" { try? handle.close() } }
        // Standard input may be a file opened part-way through: sizes count from here.
        let start = (try? handle.offset()) ?? 0
        do {
            let (header, length, _) = try await FileStream.readHeader(read: { try FileIO.readExactly(handle, $0) })
            let layout = try FileLayout(
                headerLength: length, fileSize: try Self.size(of: handle, from: start, afterHeader: length))
            // A crafted wrapped key's version shows as unknown, not as `-1` or `0` (a probe).
            let named = NativeCiphertext.keyAndVersion(header.wrappedKey)
            let report = Report(
                keyId: named?.keyId, version: named?.version,
                context: header.context.map { Report.Pair(key: $0.key, value: $0.value) }, headerLength: length,
                fileSize: layout.fileSize, chunks: layout.chunkCount, unverifiedPlaintextSize: layout.plaintextSize)
            if json { return try printJSON(report) }
            printShown("kms file v1")
            printShown("key        \(report.keyId ?? "?") version \(report.version.map(String.init) ?? "?")")
            // The header is not authenticated and anyone may have written it: escaped for the terminal.
            for entry in header.context {
                // A key holding `=` is quoted: `a=b` with `c` and `a` with `b=c` read alike otherwise (a probe).
                // By bytes: `=` followed by a combining mark is one Character, which `contains("=")` missed.
                let bytes = entry.key.utf8
                let quoted = bytes.contains(UInt8(ascii: "=")) || bytes.first == UInt8(ascii: "\"")
                let key = quoted ? "\"\(entry.key)\"" : entry.key
                // Default-ignorable characters written out too: the context is matched byte for byte, and
                // `file\u{200d}` read as `file` (the reviews).
                printShown(escapedParts: [
                    "context    ", TerminalText.escaped(key, escapingIgnorables: true), "=",
                    TerminalText.escaped(entry.value, escapingIgnorables: true),
                ])
            }
            printShown(
                "size       \(report.fileSize) bytes: header \(length), commitment 32, \(report.chunks) chunk(s)")
            printShown(
                "plaintext  \(report.unverifiedPlaintextSize) bytes if intact (not verified: that needs the data key)")
        } catch let error as FileFormatError {
            throw CLIFailure(message: error.description)
        }
    }

    /// The whole file's size: a regular file's end, or for a pipe the
    /// header, its commitment and every byte that follows, read and dropped.
    private static func size(of handle: FileHandle, from start: UInt64, afterHeader length: Int) throws -> UInt64 {
        if let end = try? handle.seekToEnd(), end >= start { return end - start }
        var size = UInt64(length + FileFormat.commitmentSize)
        while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty { size += UInt64(block.count) }
        return size
    }
}

/// Parsing of `--context` and `--range` (file-format-v1's CLI rules).
enum FileContext {
    static func parse(_ pairs: [String]) throws -> [String: String] {
        var context: [String: String] = [:]
        var seen = Set<[UInt8]>()
        for pair in pairs {
            // The first `=` byte splits (not the first Character: `=` + a combining mark is one).
            let bytes = Array(pair.utf8)
            guard let split = bytes.firstIndex(of: UInt8(ascii: "=")), split > 0 else {
                throw ValidationError("header_malformed: --context takes k=v with a non-empty key, not \(pair)")
            }
            let key = String(decoding: bytes[..<split], as: UTF8.self)
            guard seen.insert(Array(bytes[..<split])).inserted else {
                throw ValidationError("header_malformed: --context key \(key) is given twice")
            }
            // Swift strings compare canonically: two keys differing only in Unicode
            // normalization are distinct in the format but one in a dictionary.
            guard context.updateValue(String(decoding: bytes[(split + 1)...], as: UTF8.self), forKey: key) == nil else {
                throw ValidationError(
                    "header_malformed: --context keys \(key) differ only in Unicode normalization; not supported")
            }
        }
        // A context too large for the header even with the shortest wrapped key: a usage error found before
        // the server is asked for a key (it exited 1 as the library's own check; a probe).
        do {
            _ = try FileHeader(salt: Data(count: FileFormat.saltSize), wrappedKey: "x", context: context)
        } catch {
            throw ValidationError("\(error)")
        }
        return context
    }

    /// 1 to 64 chunks sealed at once (a few chunks each are read ahead).
    static func clampThreads(_ threads: Int) -> Int { min(64, max(1, threads)) }

    /// `START-END`, inclusive decimal offsets, START ≤ END; else exit status 2, `range_invalid`.
    static func parseRange(_ text: String) throws -> (start: UInt64, end: UInt64) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy(\.isDecimalDigits) else { throw rangeInvalid() }
        // Compared as numbers of any length, then each clamped to 2^64 - 1, which is past
        // the end of any file: a START there is range_not_satisfiable, an END clamped like any other.
        let (start, end) = (parts[0].drop { $0 == "0" }, parts[1].drop { $0 == "0" })
        guard start.count < end.count || (start.count == end.count && start <= end) else { throw rangeInvalid() }
        return (UInt64(parts[0]) ?? .max, UInt64(parts[1]) ?? .max)
    }

    private static func rangeInvalid() -> ExitCode {
        writeToStandardError("Error: range_invalid: --range takes START-END, decimal digits, START <= END\n")
        return ExitCode(2)
    }
}
