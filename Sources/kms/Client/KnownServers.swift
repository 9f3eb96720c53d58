import Foundation
import KMSClient
import KMSCore
import KMSProtocol

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The CLI's memory of server keys: trust on first use, as `ssh` does with
/// `known_hosts`.
///
/// Without a pin, `/session/init`'s public key is believed as sent, so a
/// man in the middle can answer in the server's place on every run. With
/// this file only the first contact is exposed: the key a server proved it
/// holds (its key-exchange confirmation opened) is written down, and every
/// later run pins it, refusing a server that answers with another key before
/// anything is sent. A pin that is given (`--fingerprint`,
/// `KMS_SERVER_FINGERPRINT`) wins and this file is not read. Servers on this
/// machine are remembered too, by port: another local user can listen on
/// `localhost:3000` while `kms serve` is down (a review finding), and a fresh
/// data folder's new key is one `kms known-servers forget` away.
///
/// One line per server: `ORIGIN SHA256:<hex> FIRST-SEEN`, `#` starts a
/// comment. A line that cannot be read makes every command refuse, naming
/// it: skipping it would trust whatever answers for that server again.
struct KnownServers: Sendable {
    let file: URL

    struct Entry: Encodable {
        let url: String
        let fingerprint: String
        let firstSeen: String
    }

    /// `KMS_KNOWN_SERVERS` (an absolute path, or `off`), else
    /// `~/.config/kms/known_servers`; nil when off. An empty or relative value
    /// is refused: a failed `$(…)` or a typo would otherwise make a file in
    /// whatever folder the command runs in, and remember nothing where it is looked for.
    static func fromEnvironment(_ environment: [String: String]) throws(CLIFailure) -> KnownServers? {
        if let setting = environment["KMS_KNOWN_SERVERS"] {
            if setting.lowercased() == "off" { return nil }
            guard setting.hasPrefix("/") else {
                throw CLIFailure(
                    message:
                        "KMS_KNOWN_SERVERS is \(setting.isEmpty ? "empty" : "not an absolute path"): give the file that remembers server keys, or `off` to remember none (docs/threat-model.md)"
                )
            }
            // A folder (a probe: Foundation's "couldn't be read" was all it said) is named as one.
            if setting.hasSuffix("/") || FileEndpoints.isFolder(setting) {
                let folder = setting.hasSuffix("/") ? String(setting.dropLast()) : setting
                throw CLIFailure(
                    message:
                        "KMS_KNOWN_SERVERS names a folder, not a file: give the file that remembers server keys (for example \(folder)/known_servers), or `off`"
                )
            }
            return KnownServers(file: URL(fileURLWithPath: setting))
        }
        return KnownServers(file: URL(fileURLWithPath: defaultPath))
    }

    /// `~/.config/kms/known_servers`, beside the client key.
    static var defaultPath: String {
        URL(fileURLWithPath: ClientKeyLookup.defaultPath).deletingLastPathComponent()
            .appendingPathComponent("known_servers").path
    }

    /// What a server is remembered by: scheme, host and port (the scheme's
    /// default made explicit), and a path prefix if the URL has one, so
    /// `http://NAS:3000` and `http://nas:3000/` are one server. Nil for a URL
    /// that is not `http` or `https` with a host (the transport refuses it).
    /// The host is taken as written (percent-encoded, never decoded into
    /// `@`, `/` or NUL), and a URL whose origin does not read back as itself
    /// is not remembered: its line would stop every later command.
    static func origin(of baseURL: String) -> String? {
        guard let origin = canonical(baseURL), canonical(origin) == origin else { return nil }
        return origin
    }

    private static func canonical(_ baseURL: String) -> String? {
        guard let parts = URLComponents(string: baseURL), let scheme = parts.scheme?.lowercased(),
            scheme == "http" || scheme == "https", var host = parts.percentEncodedHost?.lowercased(), !host.isEmpty
        else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.contains(":") { host = "[\(host)]" }
        // Not a URL the client can use: AsyncHTTPClient traps on a port past 65535 (a review).
        guard HTTPTransport.hasValidPort(baseURL) else { return nil }
        let port = parts.port ?? (scheme == "https" ? 443 : 80)
        var path = parts.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        let origin = "\(scheme)://\(host):\(port)\(path)"
        // A line's fields are split on whitespace: an origin holding any cannot be written as one.
        guard !origin.contains(where: { $0.isWhitespace || $0.isNewline }) else { return nil }
        return origin
    }

    /// Every entry; throws naming the file and line when one cannot be read.
    func entries() throws(CLIFailure) -> [Entry] {
        try entries(in: text() ?? "")
    }

    /// The file's text; nil when it does not exist. Any other failure is
    /// thrown: a file that cannot be read is never taken for an empty one,
    /// nor rewritten as one (a link to nothing, the file or a folder on the way, is no absence: a review
    /// found one taken for an empty file, and the link then renamed over).
    private func text() throws(CLIFailure) -> String? {
        if !FileManager.default.fileExists(atPath: file.path) {
            if let link = LinkToNothing.on(file.path) {
                throw CLIFailure(
                    message:
                        "cannot read the file that remembers server keys, \(file.path): \(LinkToNothing.reason(link)); mount or fix it, or, for a link to a file still to be made, make it (touch it, chmod 600) (nothing was sent)"
                )
            }
            return nil
        }
        guard !FileEndpoints.isFolder(file.path) else {
            throw CLIFailure(message: "\(file.path) is a folder, not the file that remembers server keys: move it away")
        }
        // Read once, and judged by what was read (a review: the owner was judged on a second look at the
        // name, which may be another file by then).
        let read: (data: Data, status: stat)?
        do {
            read = try DurableFile.readWithStatus(file, maxBytes: 16 << 20)
        } catch {
            throw CLIFailure(message: "cannot read the file that remembers server keys: \(error.description)")
        }
        guard let (data, info) = read else { return nil }
        // Whoever can write it chooses which key this machine trusts for a server (a probe: a world-writable
        // file was read without a word). Said, not refused: its lines are still the ones remembered.
        if info.st_mode & 0o022 != 0 {
            noteOnce(
                "warning: \(file.path) is writable by other users, who can make this machine trust another server's key: chmod 600 it\n"
            )
        }
        // Its owner and its folder's too (a review: one owned by another user, or in a folder every user may
        // write, where it can be replaced by a rename, was read without a word).
        if let owner = DurableFile.foreignOwner(info) {
            noteOnce(
                "warning: \(file.path) belongs to uid \(owner), not this user, who can make this machine trust another server's key: remove it, or chown it to yourself\n"
            )
        }
        var folder = stat()
        let folderPath = file.deletingLastPathComponent().path
        if stat(folderPath, &folder) == 0,
            DurableFile.foreignOwner(folder) != nil || (folder.st_mode & 0o002 != 0 && folder.st_mode & S_ISVTX == 0)
        {
            noteOnce(
                "warning: \(folderPath) can be written by another user, who can replace \(file.lastPathComponent) there and make this machine trust another server's key: chmod 700 it, and chown it to yourself\n"
            )
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIFailure(message: "\(file.path) is not UTF-8 text: fix or remove it (it remembers server keys)")
        }
        return text
    }

    private func entries(in text: String) throws(CLIFailure) -> [Entry] {
        var entries: [Entry] = []
        var seen = Set<String>()
        for (index, line) in Self.lines(text).enumerated() {
            let fields = Self.fields(line)
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            let problem: String?
            if fields.count != 3 {
                problem = "not `URL SHA256:<hex> FIRST-SEEN`"
            } else if Self.origin(of: String(fields[0])) != String(fields[0]) {
                // At most 200 characters of it: a probe's 50 MB line was echoed whole.
                let shown = fields[0].count > 200 ? fields[0].prefix(200) + "…" : fields[0]
                problem = "\(shown) is not a URL as this file writes it"
            } else if !Fingerprint.isWellFormed(String(fields[1])) {
                problem = "\(fields[1].prefix(80)) is not SHA256: and 64 hexadecimal digits"
            } else if !seen.insert(String(fields[0])).inserted {
                problem = "\(fields[0]) is remembered twice"
            } else {
                problem = nil
            }
            if let problem {
                throw CLIFailure(
                    message:
                        "\(file.path) line \(index + 1): \(problem). Fix or delete that line: the file remembers server keys, and a line skipped would trust whatever answers for that server again"
                )
            }
            entries.append(Entry(url: String(fields[0]), fingerprint: String(fields[1]), firstSeen: String(fields[2])))
        }
        return entries
    }

    func entry(for origin: String) throws(CLIFailure) -> Entry? {
        try entries().first { Self.sameServer($0.url, origin) }
    }

    /// Whether two origins name one server: equal, or both on this machine (`localhost`, 127.0.0.0/8,
    /// `[::1]`) with one scheme, port and path. A review: after a fresh data folder on port 4401,
    /// `http://127.0.0.1:4401` was refused loudly, but `http://localhost:4401` was a first contact,
    /// accepted with a note by a script, and the CLI's default URL and docs/api.md's spell it apart.
    static func sameServer(_ one: String, _ other: String) -> Bool {
        guard one != other else { return true }
        guard let first = URLComponents(string: one), let second = URLComponents(string: other),
            ClientOptions.isLoopback(one), ClientOptions.isLoopback(other)
        else { return false }
        return first.scheme == second.scheme && first.port == second.port
            && first.percentEncodedPath == second.percentEncodedPath
    }

    /// What `remember` found.
    enum Remembered {
        case added
        /// Another run wrote the same key down first.
        case alreadyKnown
        /// Another run wrote another key down first: trust neither.
        case conflict(CLIFailure)
    }

    /// Writes `fingerprint` down for `origin` unless an entry is there;
    /// throws only when the file cannot be read or written.
    func remember(_ origin: String, fingerprint: String, at now: Date = Date()) throws(CLIFailure) -> Remembered {
        try locked { () throws(CLIFailure) -> Remembered in
            let current = try text()
            if let known = try entries(in: current ?? "").first(where: { Self.sameServer($0.url, origin) }) {
                guard Fingerprint.matches(known.fingerprint, fingerprint) else {
                    return .conflict(conflict(origin, remembered: known.fingerprint, answered: fingerprint))
                }
                return .alreadyKnown
            }
            try write(Self.withLineEnd(current ?? Self.header) + "\(origin) \(fingerprint) \(Timestamp.format(now))\n")
            return .added
        }
    }

    /// The refusal when this file came to remember another key for `origin`
    /// while the command ran (another run, or an earlier session of this one).
    func conflict(_ origin: String, remembered: String, answered: String) -> CLIFailure {
        CLIFailure(
            message:
                "\(file.path) remembers \(remembered) for \(origin) (written while this command ran: by another run, or by an earlier session of this one), but the server answered this key exchange with \(answered): refused, and the new session ended before it carried anything. Check both with `kms server-key` on the server"
        )
    }

    /// Removes `origin`'s entry (and those of its other spellings on this machine: `sameServer`);
    /// false when there was none.
    func forget(_ origin: String) throws(CLIFailure) -> Bool {
        try locked { () throws(CLIFailure) -> Bool in
            guard let current = try text(),
                try entries(in: current).contains(where: { Self.sameServer($0.url, origin) })
            else {
                return false
            }
            // Comments and every other line are kept as they are.
            let kept = Self.lines(Self.withLineEnd(current)).filter { line in
                Self.fields(line).first.map { !Self.sameServer(String($0), origin) } ?? true
            }
            try write(kept.joined(separator: "\n"))
            return true
        }
    }

    private static let header =
        "# kms known servers: the key each server proved it holds at first contact (docs/threat-model.md).\n"
        + "# URL SHA256:<hex> FIRST-SEEN. `kms known-servers forget URL` removes one.\n"

    private static func withLineEnd(_ text: String) -> String {
        text.isEmpty || text.unicodeScalars.last == "\n" ? text : text + "\n"
    }

    /// A file edited elsewhere may end its lines in CRLF, which Swift reads as
    /// one `Character`: split on it too, or the whole file would be one line
    /// (a comment, if it began with one) and every entry silently gone.
    private static func lines(_ text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
    }

    private static func fields(_ line: Substring) -> [Substring] {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    }

    /// Where the file's bytes are: the file a link (or a chain of them) at `file` leads to, so a write
    /// replaces that file and leaves the links links (the review of 7787c82: the first write renamed a
    /// regular file over the link, and the linked file stopped being updated); `file` itself otherwise. A
    /// link that cannot be followed is refused, never written over (the review of 23794bf).
    private func target() throws(CLIFailure) -> URL {
        guard let resolved = realpath(file.path, nil) else {
            let reason = String(cString: strerror(errno))
            var info = stat()
            guard lstat(file.path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { return file }
            throw CLIFailure(message: "\(file.path) is a link that cannot be followed (\(reason)): nothing was written")
        }
        defer { free(resolved) }
        return URL(fileURLWithPath: String(cString: resolved))
    }

    private func write(_ text: String) throws(CLIFailure) {
        let destination = try target()
        do {
            try DurableFile.write(Data(text.utf8), to: destination)
        } catch {
            throw CLIFailure(message: error.description)
        }
    }

    /// Runs `body` holding an exclusive lock on the file's folder, so two
    /// runs that meet a new server at once cannot lose one's entry.
    private func locked<T>(_ body: () throws(CLIFailure) -> T) throws(CLIFailure) -> T {
        // The folder of the file written: every run that writes it locks the same one.
        let folder = try target().deletingLastPathComponent()
        do {
            try DurableFile.prepareFolder(folder)
        } catch {
            throw CLIFailure(message: error.description)
        }
        let fd = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CLIFailure(message: "cannot open folder \(folder.path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // Held for a read and a write only: ten seconds without it means a stuck process, said, not waited on.
        let deadline = ContinuousClock.now + .seconds(10)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else {
                throw CLIFailure(
                    message:
                        "cannot lock folder \(folder.path) (another kms holds it?): \(String(cString: strerror(errno)))"
                )
            }
            usleep(10_000)
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
