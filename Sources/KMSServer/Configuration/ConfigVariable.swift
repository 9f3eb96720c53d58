import Foundation

/// Every environment variable `kms serve` reads, with its default and meaning.
///
/// One table feeds `kms serve --help`, `.env.example` (a test compares them)
/// and the README, so none of them can forget a variable.
public struct ConfigVariable: Sendable {
    public let name: String
    public let defaultValue: String
    public let meaning: String

    /// The client verbs' own settings (README, the command-line client), which a server's environment
    /// may hold too.
    public static let clientNames: Set<String> = [
        "KMS_URL", "KMS_TOKEN", "KMS_SERVER_FINGERPRINT", "KMS_KNOWN_SERVERS", "KMS_CLIENT_KEY_FILE",
    ]

    /// `KMS_` names set that kms reads nowhere, sorted: a misspelled setting is otherwise ignored
    /// without a word, and its default applies (a probe set `KMS_ALLOWLIST` and got the default
    /// allowlist). The project's test and bench tooling (`KMS_TEST_`, `KMS_BENCH_`, `KMS_PG_`,
    /// `KMS_INTEROP_`) is not counted.
    public static func unread(in names: some Sequence<String>) -> [String] {
        let known = Set(all.map(\.name)).union(clientNames).union(toolingNames)
        let tooling = ["KMS_TEST_", "KMS_BENCH_", "KMS_PG_", "KMS_INTEROP_"]
        return names.filter { name in
            name.hasPrefix("KMS_") && !known.contains(name) && !tooling.contains { name.hasPrefix($0) }
        }.sorted()
    }

    /// The binary's path as `kmsctl` (deploy/) and the CI scripts take it, which reaches the `kms` they
    /// start. The interop suites' own names begin `KMS_INTEROP_` (a review: `KMS_FINGERPRINT`, exempted
    /// here, would have hidden an operator's mistaken pin from the warning).
    static let toolingNames: Set<String> = ["KMS_BIN", "KMS_BINARY"]

    /// The setting kms reads that `name` is one or two edits from, if one is: a misspelling, as against a
    /// name another tool sets in the same environment (`KMS_KEY_ID`).
    /// `among`: the names to match (a client verb matches only the client's own: `KMS_HOME` is not its
    /// `KMS_HOST`, a review).
    public static func nearest(to name: String, among names: Set<String>? = nil) -> String? {
        let known = (names ?? Set(all.map(\.name)).union(clientNames)).sorted()
        return known.map { ($0, editDistance(name, $0)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
    }

    /// The client setting an unread `name` was likely meant as: one or two edits from one, or naming its
    /// distinctive word (`KMS_BASE_URL`: `KMS_URL`; a review found those silent). Only the client's own
    /// settings: `KMS_HOME` is not a client's `KMS_HOST`.
    public static func clientSuggestion(for name: String) -> String? {
        if let near = nearest(to: name, among: clientNames.union(["KMS_TOKEN_PREFIX"])) { return near }
        let words = [
            ("FINGERPRINT", "KMS_SERVER_FINGERPRINT"), ("KNOWN", "KMS_KNOWN_SERVERS"),
            ("KEY_FILE", "KMS_CLIENT_KEY_FILE"), ("CLIENT_KEY", "KMS_CLIENT_KEY_FILE"), ("URL", "KMS_URL"),
            ("TOKEN", "KMS_TOKEN"),
        ]
        return words.first { name.contains($0.0) }?.1
    }

    /// `names` (from `unread`) for a message, each followed by the known name it is one or two edits from,
    /// when there is one: `KMS_SERVER_FINGERPRNT (KMS_SERVER_FINGERPRINT?)`. Names only, never values.
    public static func described(_ names: [String]) -> String {
        names.map { name in nearest(to: name).map { "\(name) (\($0)?)" } ?? name }.joined(separator: ", ")
    }

    /// Levenshtein distance over bytes, given up past 3 (only near names matter).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard abs(a.count - b.count) <= 2 else { return 3 }
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    public static let all: [ConfigVariable] = [
        .init(name: "KMS_PORT", defaultValue: "3000", meaning: "listen port (1-65535)"),
        .init(name: "KMS_HOST", defaultValue: "0.0.0.0", meaning: "listen address: an IP address or a host name"),
        .init(
            name: "KMS_WHITELIST", defaultValue: "100.64.0.9,127.0.0.0/8,::1",
            meaning:
                "CSV of client addresses and CIDR ranges allowed on every route (an IPv6 range admits no IPv4 client); when set, exactly this list"
        ),
        .init(
            name: "KMS_TRUSTED_PROXIES", defaultValue: "127.0.0.0/8,::1",
            meaning: "CSV of proxies whose X-Forwarded-For is believed; empty trusts none"),
        .init(name: "KEY_STORE_PATH", defaultValue: "./data/keys", meaning: "key store folder (created mode 0700)"),
        .init(
            name: "KMS_MASTER_KEY_FILE",
            defaultValue: "$CREDENTIALS_DIRECTORY/master.key if present, else ./data/master.key",
            meaning:
                "master key file (32 bytes as b64; created mode 0600 if missing; a start that makes one beside a store it cannot open stops, naming it); set, it wins over systemd's credential"
        ),
        .init(name: "KMS_MASTER_KEY", defaultValue: "", meaning: "the master key as b64; wins over the file"),
        .init(name: "KMS_SESSION_TTL_MS", defaultValue: "900000", meaning: "session time to live"),
        .init(name: "KMS_SESSION_SLIDING", defaultValue: "true", meaning: "slide the expiry on each request"),
        .init(
            name: "KMS_SESSION_MAX_LIFETIME_MS", defaultValue: "86400000",
            meaning: "absolute session lifetime from key exchange"),
        .init(name: "KMS_SESSION_INIT_TTL_MS", defaultValue: "60000", meaning: "life of a pending session"),
        .init(name: "KMS_PENDING_PER_ADDRESS", defaultValue: "64", meaning: "pending sessions per client address"),
        .init(name: "KMS_PENDING_MAX", defaultValue: "10000", meaning: "pending sessions in all"),
        .init(name: "KMS_SESSIONS_MAX", defaultValue: "100000", meaning: "live sessions in all"),
        .init(
            name: "KMS_SESSIONS_PER_CLIENT", defaultValue: "1000",
            meaning: "live sessions of one enrolled client (429 past it)"),
        .init(name: "KMS_ROTATE_WINDOW_MS", defaultValue: "10000", meaning: "token-rotation rate window"),
        .init(name: "KMS_ROTATE_MAX", defaultValue: "5", meaning: "token rotations per window and session"),
        .init(
            name: "KMS_TOKEN_PREFIX", defaultValue: "", meaning: "prefix of every token (at most 64 token characters)"),
        .init(name: "KMS_KEY_GRACE_MS", defaultValue: "604800000", meaning: "grace of a rotated-out key version"),
        .init(
            name: "KMS_KEY_MAX_VERSIONS", defaultValue: "10000",
            meaning: "versions a key may have (2 to 10000); a rotation past them is 409 limit_reached"),
        .init(
            name: "KMS_MAX_KEYS", defaultValue: "10000",
            meaning: "keys the store may hold (1 to 10000000); a generate past them is 409 limit_reached"),
        .init(
            name: "KMS_AWS_PORT", defaultValue: "",
            meaning: "port of the AWS-KMS-compatible listener, 1-65535 (unset or empty: off)"),
        .init(name: "KMS_AWS_HOST", defaultValue: "KMS_HOST", meaning: "its bind address"),
        .init(name: "KMS_AWS_REGION", defaultValue: "us-east-1", meaning: "the one region it answers for"),
        .init(name: "KMS_AWS_ACCOUNT_ID", defaultValue: "000000000000", meaning: "12 digits, in ARNs"),
        .init(name: "KMS_TLS_CERT_FILE", defaultValue: "", meaning: "PEM certificate chain (with KMS_TLS_KEY_FILE)"),
        .init(name: "KMS_TLS_KEY_FILE", defaultValue: "", meaning: "PEM private key (with KMS_TLS_CERT_FILE)"),
        .init(
            name: "KMS_TLS_HOSTNAMES", defaultValue: "",
            meaning:
                "CSV of host names and IPs for the self-signed certificate (besides localhost, 127.0.0.1, ::1; no wildcard or trailing dot)"
        ),
        .init(
            name: "KMS_AWS_ALLOW_PLAIN_HTTP", defaultValue: "false",
            meaning: "plain HTTP on the AWS listener, loopback KMS_AWS_HOST only"),
        .init(
            name: "KMS_SCHEDULER_INTERVAL_MS", defaultValue: "60000",
            meaning:
                "how often the key scheduler deletes and rotates due keys and saves encryption counts (a key rotates at 2^31 under one version; a crash loses one interval's counts) (1000 to 3600000, ±10 % jitter)"
        ),
        .init(name: "KMS_ENV", defaultValue: "development", meaning: "development or production (turns on HSTS)"),
        .init(
            name: "KMS_LOG_LEVEL", defaultValue: "info",
            meaning: "trace, debug, info, notice, warning, error or critical"),
        .init(name: "KMS_MAX_BODY_BYTES", defaultValue: "1048576", meaning: "request body limit in bytes"),
        .init(
            name: "KMS_HEADER_TIMEOUT_MS", defaultValue: "10000",
            meaning: "a request head must arrive within this of the connection or the previous answer (else closed)"),
        .init(
            name: "KMS_BODY_TIMEOUT_MS", defaultValue: "30000",
            meaning: "a request body must arrive within this of its head (else closed)"),
        .init(
            name: "KMS_IDLE_TIMEOUT_MS", defaultValue: "30000",
            meaning: "a connection with no traffic, or whose answers go unread this long, is closed"),
        .init(
            name: "KMS_MAX_CONNECTIONS", defaultValue: "1000",
            meaning:
                "open connections at once, per door; more are closed (a quarter per allowlisted address, a tenth off the allowlist); lowered with a warning to fit the open-file limit"
        ),
        .init(
            name: "KMS_KEY_EXCHANGE_RATE", defaultValue: "50",
            meaning:
                "key exchanges per second per client address (bursts of twice that); more get 429 while RSA work waits"),
        .init(
            name: "KMS_CLIENT_AUTH", defaultValue: "required",
            meaning:
                "required (enrolled clients sign the key exchange; grants decide) or off (protocol-v1, a warning); the same on every instance of one database"
        ),
        .init(
            name: "KMS_TEST_CLOCK_OFFSET_MS", defaultValue: "0",
            meaning: "tests only: milliseconds added to every clock reading (refused with KMS_ENV=production)"),
        .init(
            name: "KMS_ADMIN_KEY_FILE", defaultValue: "./data/admin.key",
            meaning: "key file of the admin client enrolled at the first start (created mode 0600 if missing)"),
        .init(
            name: "KMS_STORE", defaultValue: "file",
            meaning: "file (embedded, one instance) or postgres (several instances share keys and sessions)"),
        .init(
            name: "KMS_DATABASE_URL", defaultValue: "",
            meaning: "with KMS_STORE=postgres: postgres://user:password@host:5432/database"),
        .init(
            name: "KMS_DATABASE_PREFIX", defaultValue: "kms_",
            meaning: "prefix of the table names (lets several deployments share one database)"),
        .init(
            name: "KMS_DATABASE_TIMEOUT_MS", defaultValue: "6000",
            meaning: "a request's PostgreSQL call waits this long, then answers 503 (1000 to 15000)"),
        .init(
            name: "KMS_AUDIT_LOG", defaultValue: "./data/audit.log",
            meaning: "audit log file (Ed25519-signed hash chain of JSON lines)"),
        .init(
            name: "KMS_AUDIT_MAX_BYTES", defaultValue: "67108864",
            meaning: "size at which the audit log is rotated (the chain continues)"),
        .init(
            name: "KMS_AUDIT_TIMEOUT_MS", defaultValue: "2000",
            meaning:
                "an audited operation waits this long per audit entry for the disk, then answers 503 (100 to 15000)"),
    ]

    /// The variables as `--help` prints them.
    public static var helpText: String {
        let width = all.map(\.name.count).max() ?? 0
        return all.map { variable in
            let name = variable.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let value = variable.defaultValue.isEmpty ? "(none)" : variable.defaultValue
            return "  \(name)  \(variable.meaning)\n  \(String(repeating: " ", count: width))  default: \(value)"
        }.joined(separator: "\n")
    }
}
