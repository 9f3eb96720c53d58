import Foundation

/// A file the client reads by a default name (its key, the file that remembers server keys) that is not
/// there because a link on the way leads nowhere (a dotfiles link into a volume not mounted) is not
/// absent: taken for absent, the key search went on to the server's admin key, and the remembered keys
/// were read as none and then written over (reviews of 2026-12-06).
public enum LinkToNothing {
    /// The link to nothing on the way to `path`: the file itself or a folder above it, a link whose chain
    /// ends at a name that does not exist or loops; nil when there is none: the path exists, or simply does
    /// not, or the first thing above it that can be looked at is a real folder, or another user's link
    /// into a folder this user may not search (a HOME another user keeps closed, as before).
    public static func on(_ path: String) -> String? {
        var current = path
        while true {
            var info = stat()
            if lstat(current, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFLNK else { return nil }
                var target = stat()
                if stat(current, &target) == 0 { return nil }
                // Into a folder this user may not search: another user's link is theirs to keep closed (a
                // `sudo` keeping HOME), taken as before; this user's own is refused, as a link to nothing
                // is (the review of 23794bf: a pin file behind one was read as none).
                return errno == EACCES && info.st_uid != geteuid() ? nil : current
            }
            // Not there, or not to be looked at (a folder above that cannot be searched, a link loop): the
            // folder above says which (the review of 2c67870: a self-link or a link into a folder this user
            // may not search was taken for absent).
            let parent = (current as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != current else { return nil }
            current = parent
        }
    }
}
