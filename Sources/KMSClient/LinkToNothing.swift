import Foundation

/// A file the client reads by a default name (its key, the file that remembers server keys) that is not
/// there because something on the way cannot be passed (a dotfiles link into a volume not mounted, a
/// folder of this user's without its search bit) is not absent: taken for absent, the key search went on
/// to the server's admin key, and the remembered keys were read as none and then written over (reviews of
/// 2026-12-06).
public enum LinkToNothing {
    /// What on the way to `path` keeps it from being reached: a link whose chain ends at nothing or loops,
    /// a path the system cannot look at for another reason than a permission, or, past a folder this user
    /// may not search, the first thing it can see when this user owns it (the folder, or a link's target).
    /// nil when the path simply does not exist, or when what cannot be searched is another user's (a HOME
    /// another user keeps closed, as a `sudo` keeping HOME meets: taken as before).
    public static func on(_ path: String) -> String? {
        var current = path
        var denied = false
        while true {
            var info = stat()
            if lstat(current, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFLNK else {
                    return denied && isUsers(current, owner: info.st_uid) ? current : nil
                }
                var target = stat()
                if stat(current, &target) == 0 {
                    return denied && isUsers(current, owner: target.st_uid) ? current : nil
                }
                return errno == EACCES && info.st_uid != geteuid() ? nil : current
            }
            switch errno {
            case ENOENT, ENOTDIR: break
            case EACCES: denied = true
            default: return current
            }
            let parent = (current as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != current else { return nil }
            current = parent
        }
    }

    /// Whether what `path` names, owned by `owner`, is this user's: its own, or root's in a folder of this
    /// user's (a folder an earlier `sudo kms` made in this user's HOME, 0700: the review of bee430b found the
    /// key and pins behind it taken for absent). A root-owned folder elsewhere (`HOME=/root` under `docker
    /// run --user`) stays another user's.
    private static func isUsers(_ path: String, owner: uid_t) -> Bool {
        if owner == geteuid() { return true }
        guard owner == 0 else { return false }
        var parent = stat()
        return stat((path as NSString).deletingLastPathComponent, &parent) == 0 && parent.st_uid == geteuid()
    }

    /// What a refusal says of `blocker`.
    public static func reason(_ blocker: String) -> String {
        "\(blocker) leads nowhere or cannot be passed (a link to nothing, a link loop, or a folder of yours, or "
            + "one an earlier sudo left root's in your HOME, without its search bit)"
    }
}
