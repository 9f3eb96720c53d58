public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading for file encryption: exact-count reads from a file handle.
public enum FileIO {
    /// Reads `count` bytes, fewer only at the end of the input (a pipe may
    /// return less per read).
    public static func readExactly(_ handle: FileHandle, _ count: Int) throws -> Data {
        guard var data = try handle.read(upToCount: count) else { return Data() }
        while data.count < count {
            guard let more = try handle.read(upToCount: count - data.count), !more.isEmpty else { break }
            data.append(more)
        }
        return data
    }

    /// A sequential reader for `handle`: memory-mapped windows for a regular
    /// file (no copy: chunks are slices of the page cache), plain reads for
    /// anything else (pipes, terminals).
    ///
    /// Only for bytes that are read once: plaintext to seal, or chunks copied
    /// unchanged. A mapping shows another process's writes to the file at
    /// once, so bytes read twice could differ between the reads; what is
    /// authenticated and then decrypted comes from `positionalReader` or
    /// `readExactly`. A mapped file shortened by another process raises
    /// SIGBUS: only a caller that handles it may use this (the CLI does;
    /// the library's own file functions read plainly).
    package static func sequentialReader(_ handle: FileHandle) -> (Int) throws -> Data {
        if let mapped = MappedReader(handle) { return { try mapped.read($0) } }
        return { try readExactly(handle, $0) }
    }

    /// `readAt(offset, count)` for a regular file: `pread(2)` into a new
    /// heap buffer, fewer bytes only where the file ends, a thrown
    /// `POSIXError` when the read fails; nil for anything that is not a
    /// regular file. Decryption reads through
    /// it: AES-GCM reads a chunk twice (the tag check, then the decryption)
    /// and chunks are opened where they lie (`AESGCM256`), so they must
    /// be this process's own memory. A chunk in a mapping of the file could
    /// be rewritten by another process between the two reads and release
    /// plaintext that never authenticated. The reader holds its own
    /// duplicate of the descriptor, so it never reads a closed or reused one.
    public static func positionalReader(_ handle: FileHandle) -> (@Sendable (UInt64, Int) throws -> Data)? {
        var info = stat()
        guard fstat(handle.fileDescriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
            let file = OwnedDescriptor(duplicating: handle.fileDescriptor)
        else { return nil }
        return { offset, count in
            guard count > 0 else { return Data() }
            guard let buffer = malloc(count) else { throw POSIXError(.ENOMEM) }
            var filled = 0
            while filled < count {
                let got = pread(file.fd, buffer + filled, count - filled, off_t(offset) + off_t(filled))
                if got > 0 {
                    filled += got
                } else if got == 0 {
                    break
                } else if errno != EINTR {
                    let code = POSIXErrorCode(rawValue: errno) ?? .EIO
                    free(buffer)
                    throw POSIXError(code)
                }
            }
            return Data(bytesNoCopy: buffer, count: filled, deallocator: .free)
        }
    }
}

/// A duplicated file descriptor, closed when the last reader using it goes.
final class OwnedDescriptor: Sendable {
    let fd: Int32

    init?(duplicating fd: Int32) {
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        self.fd = copy
    }

    deinit { close(fd) }
}

/// Reads a regular file sequentially through memory-mapped windows of a few
/// MiB. Each window is one `Data` whose storage unmaps it when the last slice
/// handed out is released, so memory stays flat whatever the file size.
///
/// The size `fstat` gave is where the mapping ends, not where the input
/// does: past it the reader goes on with plain reads to the real end. A
/// file under /proc reports 0 bytes, a FUSE or network file may report a
/// stale size, and a log may grow while it is read; a review found
/// `encrypt-file /proc/cpuinfo` sealed an empty file and said it succeeded.
final class MappedReader {
    private let handle: FileHandle
    private let fd: Int32
    private let size: UInt64
    private var position: UInt64
    private var window = Data()
    private var windowStart: UInt64 = 0
    static let windowBytes = 8 << 20

    init?(_ handle: FileHandle) {
        self.handle = handle
        fd = handle.fileDescriptor
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        size = UInt64(info.st_size)
        let current = lseek(fd, 0, SEEK_CUR)
        guard current >= 0 else { return nil }
        position = UInt64(current)
    }

    func read(_ count: Int) throws -> Data {
        let end = min(size, position + UInt64(count))
        guard end > position else { return try readOn(count) }
        if position < windowStart || end > windowStart + UInt64(window.count) { try map(from: position, through: end) }
        let from = window.startIndex + Int(position - windowStart)
        let slice = window[from..<(from + Int(end - position))]
        position = end
        // Keep the descriptor's offset in step, for a caller that reads on after us (and `readOn`).
        _ = lseek(fd, off_t(position), SEEK_SET)
        guard slice.count < count else { return slice }
        // The mapped part ends inside this read: the rest, if the file goes on, comes from plain reads.
        let more = try readOn(count - slice.count)
        return more.isEmpty ? slice : slice + more
    }

    /// Plain reads from `position`, past the size the mapping covers.
    private func readOn(_ count: Int) throws -> Data {
        let data = try FileIO.readExactly(handle, count)
        position += UInt64(data.count)
        return data
    }

    private func map(from start: UInt64, through end: UInt64) throws {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let aligned = start / page * page
        let length = Int(min(size, max(end, aligned + UInt64(Self.windowBytes))) - aligned)
        // Not MAP_POPULATE: filling a whole window's page tables up front, on the
        // reading task, measured slower than faulting pages in on the sealing tasks.
        let flags = MAP_PRIVATE
        guard let base = mmap(nil, length, PROT_READ, flags, fd, off_t(aligned)), base != MAP_FAILED else {
            throw CocoaError(.fileReadUnknown)
        }
        _ = madvise(base, length, MADV_SEQUENTIAL)
        window = Data(
            bytesNoCopy: base, count: length,
            deallocator: .custom { pointer, count in
                _ = munmap(pointer, count)
            })
        windowStart = aligned
    }
}

/// An output file written as a temporary file in the destination's folder
/// (mode 0600), fsynced and renamed over the destination only by `commit`,
/// then the folder fsynced; `discard` removes it. A failed run leaves no
/// output and no temporary file, and an existing destination as it was.
public final class AtomicOutputFile {
    public let destination: URL
    /// The temporary file (removed by `discard`, renamed by `commit`).
    public let temporaryURL: URL
    public let handle: FileHandle

    public convenience init(_ destination: URL) throws {
        try self.init(destination, temporaryURL: Self.temporaryURL(for: destination))
    }

    /// A new temporary name beside `destination`, for `init(_:temporaryURL:)`: a caller that removes it on a
    /// signal learns the name before the file exists, so no moment leaves it behind (a review).
    static func temporaryURL(for destination: URL) -> URL {
        // A long destination name is cut so the temporary name stays within NAME_MAX.
        let base = String(decoding: destination.lastPathComponent.utf8.prefix(180), as: UTF8.self)
        return destination.deletingLastPathComponent().appendingPathComponent(
            ".\(base).kms-tmp-\(UUID().uuidString.prefix(8))")
    }

    /// Creates `temporaryURL` (from `temporaryURL(for:)`), never one that exists.
    init(_ destination: URL, temporaryURL: URL) throws {
        if let problem = Self.unusableDestination(destination) {
            throw CocoaError(
                .fileWriteInvalidFileName,
                userInfo: [NSFilePathErrorKey: destination.path, NSLocalizedDescriptionKey: problem])
        }
        self.destination = destination
        let folder = destination.deletingLastPathComponent()
        self.temporaryURL = temporaryURL
        let fd = open(temporaryURL.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            // The real reason (no space, too many open files, …), not always "no permission", and where.
            let code = errno
            throw NotCreated(folder: folder.path, code: POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// The temporary file could not be made in the destination's folder: nothing was written (a CLI
    /// says so as a usage error, before any work).
    public struct NotCreated: Error, CustomStringConvertible {
        public let folder: String
        public let code: POSIXErrorCode
        public var description: String {
            "cannot create the output in \(folder) (\(String(cString: strerror(code.rawValue))))"
        }
        /// Whether the path itself is wrong (no such folder, not a folder, no permission, read-only, a
        /// loop or a name too long): what the user gave, not the machine's state (a full disk, too many
        /// open files), which a CLI reports as any write failure.
        public var isThePath: Bool {
            [.EACCES, .EPERM, .EROFS, .ENOENT, .ENOTDIR, .ELOOP, .ENAMETOOLONG].contains(code)
        }
    }

    /// Why `destination` cannot be replaced by a regular file, if it cannot:
    /// a name ending in `/`, a symbolic link (the rename would replace the
    /// link), or something there that is not a regular file: a folder, a
    /// device, a pipe or a socket, which the final rename would replace by a
    /// file holding the output.
    public static func unusableDestination(_ destination: URL) -> String? {
        if destination.hasDirectoryPath { return "names a folder, not a file" }
        if let problem = nameProblem(destination) { return problem }
        var info = stat()
        // The rename replaces a link itself, not what it points to: `/dev/stdout` with standard output on a
        // file (a link to a link to that file) became a regular file in /dev holding the plaintext, and the
        // file stayed empty (a probe, as root).
        if lstat(destination.path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
            return "is a symbolic link, which the finished output would replace (not what it points to): "
                + "give the file's own path"
        }
        guard stat(destination.path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "is a folder, not a file"
        default: return "is not a regular file (a device, a pipe or a socket)"
        }
    }

    /// A final name past `NAME_MAX`, found before any work: the temporary name is cut to fit, so only
    /// the final rename would fail (a review found a whole file processed first).
    public static func nameProblem(_ destination: URL) -> String? {
        destination.lastPathComponent.utf8.count > Int(NAME_MAX) ? "has a name longer than \(NAME_MAX) bytes" : nil
    }

    public func write(_ data: Data) throws {
        try handle.write(contentsOf: data)
    }

    /// fsync, rename over the destination, fsync the folder. `exclusively` runs the rename (see `writing`).
    public func commit(exclusively: (() throws -> Void) throws -> Void = { try $0() }) throws {
        try handle.synchronize()
        try handle.close()
        var renamed: Int32 = -1
        var code: Int32 = 0
        try exclusively {
            renamed = rename(temporaryURL.path, destination.path)
            code = errno
        }
        guard renamed == 0 else {
            // The system's reason (a sticky folder, a name too long), which "error 512" did not say (a review).
            let reason = String(cString: strerror(code))
            discard()
            throw CocoaError(
                .fileWriteUnknown,
                userInfo: [
                    NSFilePathErrorKey: destination.path,
                    NSLocalizedDescriptionKey: "cannot rename the finished output onto it (\(reason))",
                ])
        }
        // The output is in place; only its name's durability is in question: said, not ignored.
        let folder = open(destination.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { throw Self.unsyncedFolder(destination) }
        defer { close(folder) }
        guard fsync(folder) == 0 else { throw Self.unsyncedFolder(destination) }
    }

    private static func unsyncedFolder(_ destination: URL) -> CocoaError {
        CocoaError(
            .fileWriteUnknown,
            userInfo: [
                NSFilePathErrorKey: destination.path,
                NSLocalizedDescriptionKey:
                    "\(destination.path) was written, but its folder could not be fsynced: a power loss may lose its name (\(String(cString: strerror(errno))))",
            ])
    }

    /// Runs `body` against a new temporary file for `destination`, committed
    /// only when `body` returns, discarded when it throws. `whileOpen` is
    /// told the temporary file's name just before it is made, and returns what to run once it is
    /// gone (committed, discarded, or never made): a CLI removes it on Ctrl-C until then,
    /// including during the final fsync of a large output. `exclusively` runs the two steps such a cleanup must
    /// not interleave with, the temporary file's creation and its rename: a CLI's signal handler that holds the
    /// same lock from its `unlink` to its exit then either removes the file before it is renamed (and no file is
    /// made after it) or finds it renamed, and says which it was.
    public static func writing<T>(
        _ destination: URL, whileOpen: (URL) -> (() -> Void) = { _ in {} },
        exclusively: (() throws -> Void) throws -> Void = { try $0() },
        _ body: (AtomicOutputFile) async throws -> T
    ) async throws -> T {
        // `whileOpen` first: a signal between the file's creation and a cleanup set up after it left an empty
        // temporary file (a review).
        let temporary = AtomicOutputFile.temporaryURL(for: destination)
        let release = whileOpen(temporary)
        defer { release() }
        var made: AtomicOutputFile?
        try exclusively { made = try AtomicOutputFile(destination, temporaryURL: temporary) }
        // `exclusively` runs its step or never returns (a signal's handler took the lock and ends the process);
        // a hook that skipped the step would leave nothing made, said as such.
        guard let sink = made else {
            throw NotCreated(folder: destination.deletingLastPathComponent().path, code: .EIO)
        }
        do {
            let result = try await body(sink)
            try sink.commit(exclusively: exclusively)
            return result
        } catch {
            sink.discard()
            throw error
        }
    }

    /// Removes the temporary file (after a failure).
    public func discard() {
        try? handle.close()
        unlink(temporaryURL.path)
    }
}
