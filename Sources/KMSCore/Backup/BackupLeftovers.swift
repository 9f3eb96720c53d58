public import Foundation

/// The hidden copies a `kms backup` killed while it wrote leaves beside its file (its temporary,
/// `.NAME.tmp-…`, or that temporary's own, `..NAME.tmp-….tmp-…`): complete backups, mode 0600, that
/// a prune by name does not see, so a deleted key's material lived on in them (a review of crashes
/// found one per unlucky kill, and the nightly unit writes a new name every night, so the next backup
/// never had the same name to sweep).
public enum BackupLeftovers {
    /// How a backup file begins (its header line's first member).
    static let magic = Data(#"{"format":"\#(BackupFile.format)""#.utf8)

    /// Removes from `folder` every hidden temporary over a minute old (a backup running beside this
    /// one may be writing its own) whose bytes begin as a backup's: nothing else that shares the
    /// folder is touched. Returns the names removed.
    @discardableResult
    public static func remove(in folder: URL, now: Date = Date()) -> [String] {
        var removed: [String] = []
        for name in (try? DurableFile.names(in: folder)) ?? [] where DurableFile.isTemporaryName(name) {
            let path = folder.appendingPathComponent(name).path
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                attributes[.type] as? FileAttributeType == .typeRegular,
                let modified = attributes[.modificationDate] as? Date, now.timeIntervalSince(modified) > 60,
                let handle = FileHandle(forReadingAtPath: path)
            else { continue }
            let start = (try? handle.read(upToCount: magic.count)) ?? nil
            try? handle.close()
            guard start == magic, unlink(path) == 0 else { continue }
            removed.append(name)
        }
        return removed
    }
}
