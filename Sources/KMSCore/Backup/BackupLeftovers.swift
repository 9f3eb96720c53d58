public import Foundation

/// The hidden copies a `kms backup` killed while it wrote leaves beside its file (its temporary,
/// `.NAME.tmp-…`, or that temporary's own, `..NAME.tmp-….tmp-…`): complete backups, mode 0600, that
/// a prune by name does not see, so a deleted key's material lived on in them (a review of crashes
/// found one per unlucky kill, and the nightly unit writes a new name every night, so the next backup
/// never had the same name to sweep).
public enum BackupLeftovers {
    /// How a backup file begins (its header line's first member).
    static let magic = Array(#"{"format":"\#(BackupFile.format)""#.utf8)

    /// Removes from `folder` every hidden temporary of this user left for a minute (`DurableFile.isAbandoned`:
    /// a backup running beside this one may be writing its own) whose bytes begin as a backup's: nothing else that
    /// shares the folder is touched. Each is judged through one descriptor opened without following
    /// a link or waiting on a pipe, and removed only if its name still leads to it (a review: a pipe
    /// swapped in after a check by name held the nightly backup in `open` for good). Returns the names
    /// removed.
    @discardableResult
    public static func remove(in folder: URL, now: Date = Date()) -> [String] {
        var removed: [String] = []
        for name in (try? DurableFile.names(in: folder)) ?? [] where DurableFile.isTemporaryName(name) {
            let path = folder.appendingPathComponent(name).path
            guard let opened = leftover(at: path, now: now) else { continue }
            var current = stat()
            guard lstat(path, &current) == 0, current.st_dev == opened.st_dev, current.st_ino == opened.st_ino,
                unlink(path) == 0
            else { continue }
            removed.append(name)
        }
        return removed
    }

    /// The status of the file at `path` when it is a leftover backup of this user's (`DurableFile.isAbandoned`).
    private static func leftover(at path: String, now: Date) -> stat? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() else { return nil }
        #if canImport(Darwin)
            let modified = TimeInterval(info.st_mtimespec.tv_sec)
        #else
            let modified = TimeInterval(info.st_mtim.tv_sec)
        #endif
        guard DurableFile.isAbandoned(modified: Date(timeIntervalSince1970: modified), now: now) else { return nil }
        var start = [UInt8](repeating: 0, count: magic.count)
        let read = start.withUnsafeMutableBytes { pread(fd, $0.baseAddress, magic.count, 0) }
        return read == magic.count && start == magic ? info : nil
    }
}
