public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where audit lines go. A protocol so tests can inject a failing disk.
public protocol AuditFileWriter: Sendable {
    /// Appends bytes (whole lines); throws on any failure.
    func append(_ data: Data) throws
    /// fsync.
    func sync() throws
    /// Current size in bytes.
    func size() throws -> Int
    /// Closes the current file, renames it to `rotatedName` and opens a new, empty one.
    func rotate(to rotatedName: String) throws
    /// Reopens the file if it was removed or replaced under us, and says
    /// whether it did and how long the (possibly new) file is: what the
    /// writer asks before every batch, answered from one `stat` and one `fstat`.
    func reopenIfReplacedAndSize() throws -> (reopened: Bool, size: Int)
    /// Cuts the file back to `size` bytes (drops a line a failed write left half-written).
    func truncate(to size: Int) throws
    /// Writes `data` over the file's bytes from `offset` on, in place: the
    /// file is never shorter than before at any moment (the rewrite after a
    /// failed fsync, of bytes the file already holds).
    func overwrite(_ data: Data, at offset: Int) throws
}

/// The real audit file: `O_APPEND`, mode 0600, in a 0700 folder. One
/// process writes it (`AuditWriterLock`, taken by `kms serve` and `kms
/// clients add --local` before they start).
public final class AuditFile: AuditFileWriter, @unchecked Sendable {
    // Only touched from `AuditLog`'s serial queue.
    private var fd: Int32 = -1
    /// A file was created or renamed in the folder since its last fsync: the
    /// next `sync()` fsyncs the folder too, so a durable entry never sits in
    /// a file whose name a power loss could take away.
    private var folderNeedsSync = false
    public let url: URL
    /// `url.path`, once: `reopenIfReplacedAndSize` stats it for every batch.
    private let path: String

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(url: URL) throws {
        self.url = url
        path = url.path
        try DurableFile.prepareFolder(url.deletingLastPathComponent())
        try openFile()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    private func openFile() throws {
        if fd >= 0 {
            // The old file (renamed or replaced under us) may hold entries not yet fsynced; a checkpoint in
            // the new file must not sign them while they are only in the page cache.
            let synced = fsync(fd) == 0
            let error = errno
            close(fd)
            fd = -1
            // This batch fails; the next opens the file at the path afresh.
            guard synced else {
                errno = error
                throw failure("cannot fsync the file it replaced")
            }
        }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            folderNeedsSync = true
        } else if errno == EEXIST {
            fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        }
        guard fd >= 0 else { throw failure("cannot open") }
    }

    public func append(_ data: Data) throws {
        if fd < 0 { try openFile() }
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot append")
                }
                offset += written
            }
        }
    }

    public func sync() throws {
        if folderNeedsSync {
            do {
                try DurableFile.syncFolder(url.deletingLastPathComponent().path)
            } catch {
                throw Failure(description: "audit log \(url.path): \(error.description)")
            }
            folderNeedsSync = false
        }
        guard fsync(fd) == 0 else { throw failure("cannot fsync") }
    }

    public func size() throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("cannot stat") }
        return Int(info.st_size)
    }

    public func rotate(to rotatedName: String) throws {
        try sync()
        let target = url.deletingLastPathComponent().appendingPathComponent(rotatedName)
        // Never replace an earlier rotated file: that would lose its entries.
        guard !FileManager.default.fileExists(atPath: target.path) else {
            throw Failure(description: "audit log \(target.path) exists already; not rotating onto it")
        }
        guard rename(url.path, target.path) == 0 else { throw failure("cannot rotate") }
        // The rename has happened and is not retried; the folder fsync that makes it (and the new
        // file) durable comes with the next sync, which a failed one then fails too.
        folderNeedsSync = true
        try openFile()
    }

    public func reopenIfReplacedAndSize() throws -> (reopened: Bool, size: Int) {
        var open = stat()
        var onDisk = stat()
        let replaced =
            fd < 0 || fstat(fd, &open) != 0 || stat(path, &onDisk) != 0 || open.st_ino != onDisk.st_ino
            || open.st_nlink == 0
        guard replaced else { return (false, Int(open.st_size)) }
        try self.openFile()
        return (true, try size())
    }

    public func truncate(to size: Int) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw failure("cannot truncate") }
    }

    public func overwrite(_ data: Data, at offset: Int) throws {
        if fd < 0 { try openFile() }
        // `pwrite` on an `O_APPEND` descriptor appends on Linux: the flag is cleared for the write and
        // set again after it (this descriptor is only used on the log's serial queue).
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_APPEND) == 0 else { throw failure("cannot overwrite") }
        defer { _ = fcntl(fd, F_SETFL, flags) }
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let written = pwrite(fd, raw.baseAddress.map { $0 + done }, raw.count - done, off_t(offset + done))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot overwrite")
                }
                done += written
            }
        }
    }

    private func failure(_ what: String) -> Failure {
        Failure(description: "audit log \(url.path): \(what): \(String(cString: strerror(errno)))")
    }
}
