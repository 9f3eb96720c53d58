public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Makes one process the writer of an audit log (and of the deployment
/// around it), or of a file key store, for as long as it runs.
///
/// Two writers would each continue the hash chain from their own idea of its
/// end, and a server cuts back whatever it did not write itself: the other's
/// entries would vanish with the chain still verifying. So `kms serve` and
/// `kms clients add --local` take a POSIX write lock on `<log>.lock` (and,
/// when the log's path is a symbolic link, on `<the file it names>.lock`
/// too) before
/// they touch anything (the log's half-line repair, the store's stale
/// temporaries), keep it while they run, and a second one is refused,
/// naming the holder's pid.
///
/// A separate lock file, because a POSIX lock is dropped when the process
/// closes *any* descriptor of the locked file, and the log is opened and
/// closed while it is read back at start-up. The lock is per process, so
/// tests that build several servers in one process do not conflict; it is
/// released with this object (the audit log holds it) or when the process exits. A log that is not a regular file
/// (`/dev/null`) takes no lock, and a file system without locks is used
/// unlocked.
public final class AuditWriterLock: Sendable {
    private let fds: [Int32]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// Another process holds the lock, as against a lock file that could not be made or opened (a folder
        /// this user may not write: a review of `kms restore` found that called "held by a running server").
        public internal(set) var held = false
        /// The system's error number when a call failed (an EACCES is what a caller may advise on).
        public internal(set) var code: Int32?
    }

    private init(fds: [Int32]) { self.fds = fds }

    /// Released with the last reference (or at exit).
    deinit { for fd in fds { close(fd) } }

    /// The lock for `log`, or nil when the log is not a regular file. Throws
    /// when another process holds it or the lock file cannot be made.
    public static func acquire(forLog log: URL) throws(Failure) -> AuditWriterLock? {
        let path = log.standardizedFileURL.path
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG { return nil }
        do {
            try DurableFile.prepareFolder(log.deletingLastPathComponent())
        } catch {
            throw Failure(description: error.description, code: error.code)
        }
        // Beside the path as named and, for a link, beside the file it names as well: two processes
        // naming one log through a link and directly meet at the second; and a rotation renames the
        // link itself (a regular file takes its place), so a later process meets the first.
        let busy = "audit log \(path) is being written by another process"
        let then = "Stop it first; two writers would break the hash chain"
        let named = try lock(path + ".lock", busy: busy, then: then)
        guard let resolved = realPath(path), resolved != path else { return AuditWriterLock(fds: [named]) }
        do {
            return AuditWriterLock(fds: [named, try lock(resolved + ".lock", busy: busy, then: then)])
        } catch {
            close(named)
            throw error
        }
    }

    /// The lock of a file key store (`KEY_STORE_PATH/.writer.lock`), held by
    /// `kms serve`, `kms restore` and `kms clients add --local` on the store
    /// itself: the audit log's lock protects a store only when every process
    /// names the same log, and a restore run with another `KMS_AUDIT_LOG` (or
    /// `/dev/null`) would otherwise swap files under a running server. The
    /// name starts with a dot, so a never-started store stays "empty".
    public static let storeLockName = ".writer.lock"

    public static func acquire(forStore folder: URL) throws(Failure) -> AuditWriterLock {
        do {
            try DurableFile.prepareFolder(folder)
        } catch {
            throw Failure(description: error.description, code: error.code)
        }
        let path = folder.standardizedFileURL.appendingPathComponent(storeLockName).path
        let fd = try lock(
            path, busy: "key store \(folder.path) is in use by another process",
            then: "Stop it first; a store has one writer")
        return AuditWriterLock(fds: [fd])
    }

    /// `path` with every symbolic link resolved; nil when it does not exist yet.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether another process holds `log`'s lock now (a writer: `kms serve`, or `kms restore`, `kms migrate`,
    /// `kms clients add --local` while they write), looked at without
    /// taking it (`F_GETLK`): a reader may then meet a batch half-written (`AuditVerifier.verify`'s
    /// `lastLineMayBeInProgress`). False when there is no lock file or it cannot be opened.
    /// Beside the path as named and beside the file a link there names, as `acquire` locks both (the
    /// review of 649a285: a log given through a link looked at a lock file no one holds). Never call it
    /// while this process holds the lock: closing a descriptor of the lock file drops the process's locks.
    public static func isHeld(forLog log: URL) -> Bool {
        let path = log.standardizedFileURL.path
        return ([path] + (realPath(path).map { [$0] } ?? [])).contains { named in
            let fd = open(named + ".lock", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var holder = flock()
            holder.l_type = Int16(F_WRLCK)
            holder.l_whence = Int16(SEEK_SET)
            return fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK)
        }
    }

    /// The descriptor holding a write lock on `lockPath`.
    private static func lock(_ lockPath: String, busy: String, then: String) throws(Failure) -> Int32 {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw Failure(description: "cannot open \(lockPath): \(String(cString: strerror(code)))", code: code)
        }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) != 0, errno == EACCES || errno == EAGAIN {
            var holder = flock()
            holder.l_type = Int16(F_WRLCK)
            holder.l_whence = Int16(SEEK_SET)
            let pid =
                fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? " (pid \(holder.l_pid))" : ""
            close(fd)
            throw Failure(description: "\(busy)\(pid): a running kms serve or kms restore? \(then)", held: true)
        }
        return fd
    }
}
