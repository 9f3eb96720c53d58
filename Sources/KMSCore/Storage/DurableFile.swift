public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Crash-safe file writes for anything that holds key material.
///
/// A write goes to a temporary file in the same folder (mode 0600), is
/// fsynced, renamed over the target and the folder is fsynced, so that after
/// a crash the target holds either the old or the new bytes, never a mix.
public enum DurableFile {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// What is there is not a record and waiting will not make it one (a folder, a device, a link
        /// to nothing), as against an error of the disk.
        public var damaged = false
        /// The system's error number, for a failed system call: what a caller may advise on.
        public var code: Int32?
        /// `createExclusive`'s `link(2)` failed (not the write before it).
        var fromLink = false

        public init(description: String, damaged: Bool = false, code: Int32? = nil) {
            self.description = description
            self.damaged = damaged
            self.code = code
        }

        /// A file system without hard links (vfat and exFAT, as on most USB drives; some network shares):
        /// `createExclusive` publishes with `link(2)`, which such a system refuses. Only its `link(2)`'s
        /// refusal: an EPERM of the write before it (an immutable folder) is not this (a review).
        public var noHardLinks: Bool {
            fromLink && code.map { [EPERM, EOPNOTSUPP, ENOTSUP].contains($0) } ?? false
        }
    }

    /// Creates `folder` (and parents) with mode 0700 if missing, and checks
    /// it is writable. A folder that already existed is left as it is: the KMS
    /// tightens only folders it created, never one that may be shared (a
    /// common log folder) or the system's (`/dev`, when a log is `/dev/null`).
    /// `looseness(of:)` says when an existing one deserves a warning.
    public static func prepareFolder(_ folder: URL) throws(Failure) {
        let path = folder.path
        let existed = FileManager.default.fileExists(atPath: path)
        if !existed {
            // Each missing folder, from the top, by mkdir(2) with 0700 (a umask can only tighten that:
            // no moment where it is open to others) and its parent fsynced (a power cut must not lose
            // the tree a master key was just written into).
            var missing: [URL] = []
            var current = folder.standardizedFileURL
            while current.path != "/", !current.path.isEmpty, !FileManager.default.fileExists(atPath: current.path) {
                missing.append(current)
                current = current.deletingLastPathComponent()
            }
            for created in missing.reversed() {
                guard mkdir(created.path, 0o700) == 0 || errno == EEXIST else {
                    throw failure("cannot create folder \(created.path)")
                }
                try syncFolder(created.deletingLastPathComponent().path)
            }
            // Kept as a check: the folder is ours and must be private.
            if let mode = mode(of: folder), mode & 0o077 != 0, chmod(path, 0o700) != 0 {
                throw failure("cannot restrict folder \(path) to mode 0700")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw failure("folder \(path) is not writable")
        }
    }

    /// A warning when an existing folder that will hold key material or the
    /// audit log is open to other users (group or other bits set); nil when
    /// it is private, missing, or not a folder.
    public static func looseness(of folder: URL) -> String? {
        guard let mode = mode(of: folder), mode & 0o077 != 0 else { return nil }
        let can = mode & 0o022 != 0 ? "replace its files" : "list it"
        return "folder \(folder.path) is mode \(String(mode & 0o777, radix: 8)): other users can \(can); "
            + "chmod 700 it unless it is shared on purpose (the KMS tightens only folders it creates)"
    }

    /// Why an existing folder that holds the store or the master key cannot be trusted, or nil (a
    /// missing one too): one that a user other than `user` and root owns, or that every user may write
    /// (they may create the master key's name before the server does). Either can put a file of their
    /// own in place of the server's (a review made `data/` and `data/keys` as another user, mode 777,
    /// with a master key it chose, and the server started on it with warnings). A folder every user may
    /// write is still trusted for a file it already holds when its file system is read-only, or when it
    /// is sticky, owned by root or `user`, and the file by root or `user` (nobody else may then remove or
    /// rename it): a Kubernetes secret volume is a root-owned 1777 folder (the diff review).
    public static func untrustedFolder(_ folder: URL, user: uid_t = geteuid(), holding file: URL? = nil) -> String? {
        var info = stat()
        guard stat(folder.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
        if let owner = foreignOwner(info, user: user) {
            return "folder \(folder.path) belongs to uid \(owner), neither this user nor root: that user can replace "
                + "the files in it (the master key, the store's records); chown it to this user (a container run as "
                + "root on a folder the host's user owns: run it with that user's id)"
        }
        guard info.st_mode & 0o002 != 0 else { return nil }
        if let file {
            var system = statvfs()
            if statvfs(folder.path, &system) == 0, system.f_flag & UInt(ST_RDONLY) != 0 { return nil }
            // The name itself too, not only what it points at: another user's link in a sticky folder is
            // theirs to repoint (the final review); a secret volume's links are root's.
            var held = stat()
            var name = stat()
            if info.st_mode & S_ISVTX != 0, stat(file.path, &held) == 0, foreignOwner(held, user: user) == nil,
                lstat(file.path, &name) == 0, foreignOwner(name, user: user) == nil
            {
                return nil
            }
        }
        return "folder \(folder.path) is mode \(String(info.st_mode & 0o7777, radix: 8)): every user can put "
            + "files in it (the master key, the store's records); chmod 700 it"
    }

    /// A folder or link on the way to a folder that lets another user swap it (`untrustedWay`).
    public struct UntrustedWay: Sendable, Equatable {
        /// The folder or link found.
        public let path: String
        public let description: String
    }

    /// Why a folder above `folder` lets another user swap `folder` for one of their own, or nil
    /// (`untrustedWay`'s description).
    public static func untrustedAncestor(of folder: URL, user: uid_t = geteuid()) -> String? {
        untrustedWay(to: folder, user: user)?.description
    }

    /// What on the way to `folder` lets another user swap it for one of their own, or nil: a folder above
    /// it that a user other than `user` and root owns, or that every user may write without the sticky
    /// bit (whoever may write a folder may rename what is in it), or a link on the way, `folder`'s own name
    /// included, that such a user owns (theirs to repoint). `untrustedFolder` judges `folder` itself; this
    /// judges the way to it, as OpenSSH's `StrictModes` judges the way to `authorized_keys`. Every folder
    /// of the path as written (the folder holding a link included; `..` as the kernel takes it) and of the
    /// path its links lead to is judged; a link inside a link's target is not followed further. Folders
    /// that do not exist yet (a first start makes them) are skipped; when the links cannot be resolved
    /// (a folder this user may not search), only the path as written is judged.
    ///
    /// `judgingGroups`: also a folder above that a group other than root's and the user's may write
    /// (Debian's `/var/local` is 2775 `root:staff`), as StrictModes judges. Not for the audit log's folder,
    /// whose log is tamper-evident on its own and which deploy.md puts under `/var/log`, `root:syslog`
    /// 0775 on Ubuntu (a review: every start warned, and `kms doctor` advised `chmod g-w /var/log`).
    public static func untrustedWay(to folder: URL, user: uid_t = geteuid(), judgingGroups: Bool = true)
        -> UntrustedWay?
    {
        var written = folder.path
        if !written.hasPrefix("/") { written = FileManager.default.currentDirectoryPath + "/" + written }
        // The deepest part that exists, and where its links lead.
        var existing = written
        while existing.count > 1, access(existing, F_OK) != 0 {
            existing = (existing as NSString).deletingLastPathComponent
        }
        var below = written
        if let resolved = realpath(existing, nil) {
            below = String(cString: resolved) + String(written.dropFirst(existing.count))
            free(resolved)
        }
        var judged = Set<String>()
        for path in [written, below] {
            var prefixes = ["/"]
            var prefix = ""
            for component in path.split(separator: "/") {
                prefix += "/" + component
                prefixes.append(prefix)
            }
            for (index, ancestor) in prefixes.enumerated() where judged.insert(ancestor).inserted {
                var name = stat()
                guard lstat(ancestor, &name) == 0 else { break }
                if name.st_mode & S_IFMT == S_IFLNK, let owner = foreignOwner(name, user: user) {
                    return UntrustedWay(
                        path: ancestor,
                        description: "\(ancestor) is a link that belongs to uid \(owner), neither this user nor "
                            + "root: that user can point it, and \(written) with it, elsewhere; use a path with no "
                            + "link another user owns")
                }
                // `folder` itself is `untrustedFolder`'s to judge: only the folders above it here.
                guard index < prefixes.count - 1 else { break }
                var info = stat()
                guard stat(ancestor, &info) == 0 else { break }
                if let owner = foreignOwner(info, user: user) {
                    return UntrustedWay(
                        path: ancestor,
                        description: "folder \(ancestor), above \(written), belongs to uid \(owner), neither this "
                            + "user nor root: that user can rename what is in it and put a folder of their own in "
                            + "its place; move the data to a folder only this user or root controls")
                }
                if info.st_mode & 0o002 != 0, info.st_mode & S_ISVTX == 0 {
                    return UntrustedWay(
                        path: ancestor,
                        description: "folder \(ancestor), above \(written), is mode "
                            + "\(String(info.st_mode & 0o7777, radix: 8)): every user can rename what is in it and "
                            + "put a folder of their own in its place; chmod o-w it (or +t, as /tmp is)")
                }
                // Group-writable too, as OpenSSH's StrictModes judges (a review: Debian's /var/local is
                // 2775 root:staff), unless the group is root's (as logrotate allows) or one the user is in.
                if judgingGroups, info.st_mode & 0o020 != 0, info.st_mode & S_ISVTX == 0, info.st_gid != 0,
                    !ownGroups(of: user).contains(info.st_gid)
                {
                    return UntrustedWay(
                        path: ancestor,
                        description: "folder \(ancestor), above \(written), is mode "
                            + "\(String(info.st_mode & 0o7777, radix: 8)) and group \(info.st_gid)'s: every member of "
                            + "that group can rename what is in it and put a folder of their own in its place; "
                            + "chmod g-w it")
                }
            }
        }
        return nil
    }

    /// The groups whose write bit on a folder above is not another user's way in: those `user` is in
    /// (its primary group and, on Linux, every group `/etc/group` lists it in: `kms doctor` run as root
    /// judges for the service's user as the service judges for itself: a review), and for this process's
    /// own user the groups it runs with (Kubernetes' `fsGroup`, `docker run --user UID:GID`). Membership,
    /// not exclusivity: a group the user shares with others (macOS's `staff`) is taken as the user's.
    static func ownGroups(of user: uid_t) -> Set<gid_t> {
        var groups = Set<gid_t>()
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        // `entry.pw_name` points into `buffer`: both calls inside one borrow of it (a review: the pointer of
        // an inout conversion is valid during its call only).
        buffer.withUnsafeMutableBufferPointer { storage in
            guard let base = storage.baseAddress, getpwuid_r(user, &entry, base, storage.count, &result) == 0,
                result != nil
            else { return }
            groups.insert(entry.pw_gid)
            #if canImport(Glibc)
                if let name = entry.pw_name {
                    var count: Int32 = 256
                    var list = [gid_t](repeating: 0, count: Int(count))
                    if getgrouplist(name, entry.pw_gid, &list, &count) >= 0 {
                        groups.formUnion(list.prefix(Int(max(0, count))))
                    }
                }
            #endif
        }
        guard user == geteuid() else { return groups }
        groups.insert(getegid())
        let count = getgroups(0, nil)
        if count > 0 {
            var list = [gid_t](repeating: 0, count: Int(count))
            let read = getgroups(count, &list)
            if read > 0 { groups.formUnion(list.prefix(Int(read))) }
        }
        return groups
    }

    /// Every file and folder under `folder` (links not followed), with its permission bits: what
    /// `kms doctor` and start-up judge the store's modes by (one walk, not two kinds of it).
    public static func entries(under folder: URL) -> [(path: String, mode: mode_t, isFolder: Bool)] {
        let root = folder.path
        var found: [(path: String, mode: mode_t, isFolder: Bool)] = []
        let walker = FileManager.default.enumerator(atPath: root)
        while let name = walker?.nextObject() as? String {
            let path = root + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let kind = info.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFDIR else { continue }
            found.append((path, info.st_mode & 0o777, kind == S_IFDIR))
        }
        return found
    }

    /// Atomically replaces `url` with `data`, durable once this returns.
    /// How many bytes `write`'s temporary name (`.NAME.tmp-<uuid>`) adds to the file's name; a caller
    /// can refuse a name with no room for it before doing its work.
    public static let temporaryNameExtraBytes = ".".utf8.count + ".tmp-".utf8.count + UUID().uuidString.utf8.count

    public static func write(_ data: Data, to url: URL, mode: mode_t = 0o600, syncFolder: Bool = true) throws(Failure) {
        let folder = url.deletingLastPathComponent().path
        let temp = folder + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot create \(temp)") }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        let written = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let result = systemWrite(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
                if result < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += result
            }
            return true
        }
        guard written, fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let error = failure("cannot write \(temp)")
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw failure("cannot close \(temp)") }
        guard rename(temp, url.path) == 0 else { throw failure("cannot rename \(temp) to \(url.path)") }
        ok = true
        if syncFolder { try Self.syncFolder(folder) }
    }

    /// Creates `url` with `data` only if it does not exist (across processes:
    /// the fully written temp file is published with `link(2)`, which fails on
    /// an existing name). Returns false, writing nothing, when it exists.
    public static func createExclusive(_ data: Data, at url: URL) throws(Failure) -> Bool {
        let folder = url.deletingLastPathComponent()
        let temp = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        try write(data, to: temp, syncFolder: false)
        let linked = link(temp.path, url.path) == 0
        let linkError = errno
        // The temporary name goes before the folder fsync: a crash after it must not leave a second,
        // hidden name for the file (a master key that stays on disk after its file is moved away).
        unlink(temp.path)
        guard linked else {
            // ENOENT: another instance's start swept this temporary (`removeStaleTemporaries(of:)`) because
            // the file exists already, which is the answer.
            if linkError == EEXIST || (linkError == ENOENT && FileManager.default.fileExists(atPath: url.path)) {
                return false
            }
            errno = linkError
            var refused = failure("cannot create \(url.path)")
            refused.fromLink = true
            throw refused
        }
        try syncFolder(folder.path)
        return true
    }

    /// fsyncs a folder so that a rename or unlink in it survives a crash.
    public static func syncFolder(_ folder: String) throws(Failure) {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open folder \(folder)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw failure("cannot fsync folder \(folder)") }
    }

    /// Whether `url` cannot be looked up for lack of permission on a folder above it (`EACCES`): it
    /// may well exist, and must not be taken for missing.
    public static func isUnreachable(_ url: URL) -> Bool {
        var info = stat()
        return stat(url.path, &info) != 0 && errno == EACCES
    }

    /// Whether `mode`, the mode of the secret file `url`, lets others than its owner read it. A file
    /// systemd passes as a credential may show group read, and only that: systemd grants the service's
    /// user an ACL entry, whose mask `stat` reports as group bits (0440, owned by root, on tmpfs since
    /// kernel 6.4), and the folder is the service's alone (a review: every start warned, and `kms
    /// doctor` failed, on a credential nobody could tighten). A credential is a file directly in
    /// `$CREDENTIALS_DIRECTORY` or in a unit's folder under `/run/credentials` (`kmsctl doctor` checks
    /// the TLS key `kms.service` is given, from a unit of its own).
    public static func isLooseSecret(mode: mode_t, of url: URL) -> Bool {
        guard mode & 0o077 != 0 else { return false }
        guard mode & 0o077 == 0o040 else { return true }
        let folder = url.deletingLastPathComponent().standardizedFileURL
        if folder.deletingLastPathComponent().path == "/run/credentials" { return false }
        guard let credentials = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"], !credentials.isEmpty
        else { return true }
        return folder.path != URL(fileURLWithPath: credentials).standardizedFileURL.path
    }

    /// The user that owns `url` (through links) when it is neither `user` nor root, else nil (no such
    /// file too). That user can read a secret file and replace it, whatever its mode says: a key file
    /// planted by another user before the first start is that user's key (a review).
    public static func foreignOwner(of url: URL, user: uid_t = geteuid()) -> uid_t? {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        return foreignOwner(info, user: user)
    }

    /// The same for a status already read.
    public static func foreignOwner(_ info: stat, user: uid_t = geteuid()) -> uid_t? {
        info.st_uid != user && info.st_uid != 0 ? info.st_uid : nil
    }

    /// The permission bits of a file, or nil if it cannot be read.
    public static func mode(of url: URL) -> mode_t? {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    /// The bytes of `url`, or nil when there is no such file. Any other
    /// failure (no permission, an I/O error, no file descriptors left, not a
    /// regular file) throws:
    /// a store that took an unreadable file for a missing one would answer
    /// "no such key", skip it in a backup, or start an empty client registry
    /// over the real one. A file over `maxBytes` throws too (it is not one of
    /// ours, and would be read whole into memory).
    /// `acceptsPipes`: a pipe is read too, to its end or `maxBytes` (`kms restore /dev/stdin`, fed by a
    /// decrypting tool: a review found it refused); one with no writer reads as empty, never waits.
    /// `opening`: judges the first bytes read (up to `openingBytes`, or all of a shorter input) as soon as
    /// they are in, and a message it returns refuses the input there: a pipe has no size to refuse first,
    /// and `cat /dev/zero` would otherwise fill the memory up to `maxBytes` (a review).
    public static func readIfPresent(
        _ url: URL, maxBytes: Int = 64 << 20, acceptsPipes: Bool = false, opening: ((Data) -> String?)? = nil
    ) throws(Failure) -> Data? {
        try readWithStatus(url, maxBytes: maxBytes, acceptsPipes: acceptsPipes, opening: opening)?.data
    }

    /// How many first bytes `opening` is given.
    public static let openingBytes = 4096

    /// `readIfPresent`, with the file's status as read from the descriptor the bytes came from (its owner
    /// and mode, checked with no second look up of the name that another user could change between).
    public static func readWithStatus(
        _ url: URL, maxBytes: Int = 64 << 20, acceptsPipes: Bool = false, opening: ((Data) -> String?)? = nil
    ) throws(Failure) -> (data: Data, status: stat)? {
        // Non-blocking: a named pipe planted at the name would otherwise hold `open` (and the store's
        // queue) until something wrote to it (a review); it is then refused below as not a regular file,
        // unless the caller takes pipes.
        let fd = open(url.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT {
                // A link to nothing is damage, not absence (a review: a dangling link in place of a key file
                // made the key vanish from lists, lookups and backups, with no warning and `kms backup` exit 0).
                var info = stat()
                guard lstat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { return nil }
                throw Failure(description: "\(url.path) is a link to nothing", damaged: true)
            }
            throw failure("cannot open \(url.path)")
        }
        defer { close(fd) }
        // Only a regular file: a folder is EISDIR, and a device (`/dev/zero`) would never end.
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("cannot stat \(url.path)") }
        guard info.st_mode & S_IFMT == S_IFREG || (acceptsPipes && info.st_mode & S_IFMT == S_IFIFO) else {
            throw Failure(description: "\(url.path) is not a regular file", damaged: true)
        }
        // Blocking again for the reads (a FUSE file system may honour the flag and answer EAGAIN).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard Int(info.st_size) <= maxBytes else {
            throw Failure(description: "\(url.path) is larger than \(maxBytes) bytes, more than this file ever holds")
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var judged = opening == nil
        func judge() throws(Failure) {
            judged = true
            if let refusal = opening?(data.prefix(openingBytes)) { throw Failure(description: refusal) }
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 {
                if !judged { try judge() }
                return (data, info)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read \(url.path)")
            }
            data.append(contentsOf: chunk[0..<count])
            if !judged, data.count >= openingBytes { try judge() }
            // A pipe has no size to check first, and a file may grow while it is read.
            guard data.count <= maxBytes else {
                throw Failure(
                    description: "\(url.path) holds more than \(maxBytes) bytes, more than this file ever holds")
            }
        }
    }

    /// The names in `folder`; none when the folder does not exist. Any other
    /// failure throws, for the reason `readIfPresent` gives.
    public static func names(in folder: URL) throws(Failure) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            var info = stat()
            if lstat(folder.path, &info) != 0, errno == ENOENT { return [] }
            // The system's error number (an EACCES is what a caller may advise on), and its words: Foundation's
            // read "(NSCocoaErrorDomain error 256.)" on Linux (a review's probe).
            let code = Self.posixCode(of: error)
            let reason = code.map { String(cString: strerror($0)) } ?? error.localizedDescription
            throw Failure(description: "cannot list folder \(folder.path): \(reason)", code: code)
        }
    }

    /// The system's error number behind a Foundation error, nil when it kept none. On Linux, Foundation
    /// keeps it as a `POSIXError` under `NSUnderlyingErrorKey`, not as an `NSError` of the POSIX domain,
    /// which a first reading looked for and never found (a review, with a probe).
    public static func posixCode(of error: any Error) -> Int32? {
        if let failure = error as? POSIXError { return failure.code.rawValue }
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey]
        if let failure = underlying as? POSIXError { return failure.code.rawValue }
        if let failure = underlying as? NSError, failure.domain == NSPOSIXErrorDomain { return Int32(failure.code) }
        return nil
    }

    /// Removes the temporary copies of `file` a crash left beside it (before
    /// `createExclusive` unlinked its temporary name first, a crash could
    /// leave a hidden second name for a master key). Only `file`'s own: its
    /// folder may be shared (`/etc/kms`).
    public static func removeStaleTemporaries(of file: URL) {
        let prefix = ".\(file.lastPathComponent).tmp-"
        let folder = file.deletingLastPathComponent()
        // `createExclusive`'s temporary is itself written through a temporary of its own, `.` + its name:
        // a crash inside that write left `..NAME.tmp-A.tmp-B`, which the first prefix missed (a review
        // found a master key's and an admin key's copies left that way). Those are swept only once a
        // minute old: another instance sharing the file may be writing one now, and its rename would fail
        // (the outer name's loss it handles: `createExclusive`).
        let now = Date()
        for name in (try? names(in: folder)) ?? [] {
            let path = folder.appendingPathComponent(name).path
            if name.hasPrefix(prefix) {
                unlink(path)
            } else if name.hasPrefix("." + prefix), let modified = modificationDate(path),
                isAbandoned(modified: modified, now: now)
            {
                unlink(path)
            }
        }
    }

    /// Whether a temporary last written at `modified` is a crash's leftover rather than a live writer's
    /// (another instance sharing the folder, a backup running beside this one): a minute without a
    /// write. A writer stalled longer (a slow network file system's fsync) loses its temporary and
    /// fails loudly at its rename; nothing is taken for written that was not.
    public static func isAbandoned(modified: Date, now: Date) -> Bool { now.timeIntervalSince(modified) > 60 }

    private static func modificationDate(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    /// Whether `name` is a temporary file of this type's writes (`.NAME.tmp-…`), which a crash may leave.
    public static func isTemporaryName(_ name: String) -> Bool { name.hasPrefix(".") && name.contains(".tmp-") }

    /// Removes temporary files a crash left behind in `folder`.
    public static func removeStaleTemporaries(in folder: URL) {
        for name in (try? names(in: folder)) ?? [] where isTemporaryName(name) {
            unlink(folder.path + "/" + name)
        }
    }

    private static func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
        #if canImport(Glibc)
            return Glibc.write(fd, buffer, count)
        #elseif canImport(Musl)
            return Musl.write(fd, buffer, count)
        #else
            return Darwin.write(fd, buffer, count)
        #endif
    }

    /// `what` failed, with the system's error number (read first, before `what` is built: building it may
    /// call Foundation, which can change `errno`) and words.
    static func failure(_ what: @autoclosure () -> String) -> Failure {
        let code = errno  // before anything else can change it
        return Failure(description: "\(what()): \(String(cString: strerror(code)))", code: code)
    }
}

extension DurableFile {
    /// `readIfPresent` for a store: a file that cannot be read is `503 server_busy` (`storageUnavailable`,
    /// or `damagedRecord` for what is not a file: a link to nothing, a folder, a device).
    static func storedBytes(_ url: URL) throws(KMSError) -> Data? {
        do {
            return try readIfPresent(url)
        } catch {
            throw error.damaged ? KMSError.damagedRecord(error.description) : .storageUnavailable(error.description)
        }
    }

    /// `names(in:)` for a store: a folder that cannot be listed is `503 server_busy` (`storageUnavailable`).
    static func storedNames(in folder: URL) throws(KMSError) -> [String] {
        do {
            return try names(in: folder)
        } catch {
            throw KMSError.storageUnavailable(error.description)
        }
    }
}
