import Foundation

/// A file the client reads by a default name (its key, the file that remembers server keys) that is not
/// there because a link on the way leads nowhere (a dotfiles link into a volume not mounted) is not
/// absent: taken for absent, the key search went on to the server's admin key, and the remembered keys
/// were read as none and then written over (reviews of 2026-12-06).
public enum LinkToNothing {
    /// The link to nothing on the way to `path`: the file itself or a folder above it; nil when there is
    /// none (the path exists, or simply does not, or cannot be looked at, which is taken as before).
    public static func on(_ path: String) -> String? {
        var current = path
        while true {
            var info = stat()
            if lstat(current, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFLNK else { return nil }
                var target = stat()
                return stat(current, &target) == 0 ? nil : current
            }
            guard errno == ENOENT else { return nil }
            let parent = (current as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != current else { return nil }
            current = parent
        }
    }
}
