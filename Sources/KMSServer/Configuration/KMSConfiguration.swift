public import Foundation
public import KMSCore
import KMSPostgres
public import Logging

/// Everything `kms serve` is configured with, validated once at start-up.
///
/// Built from the environment merged over an optional `.env` file; a bad
/// value stops start-up with a message naming the variable, and nothing
/// falls back silently.
public struct KMSConfiguration: Sendable {
    public enum Environment: String, Sendable { case development, production }

    public var host = "0.0.0.0"
    public var port = 3000
    public var allowlist: [AddressRange]
    public var trustedProxies: [AddressRange]
    public var keyStorePath = URL(fileURLWithPath: "./data/keys")
    public var masterKeyFile = URL(fileURLWithPath: "./data/master.key")
    public var masterKeyBase64: String?
    /// systemd's credential `master.key`, when `KMS_MASTER_KEY_FILE` or `KMS_MASTER_KEY` is set
    /// too and wins: `kms serve` warns that the credential is not used (an operator's review copied
    /// `.env.example`'s path with the unit's credential and got a new master key beside the store).
    public var ignoredCredentialKey: URL?
    /// `KMS_MASTER_KEY_FILE` when `KMS_MASTER_KEY` is set too and wins: `kms serve` warns that the file is
    /// not read (an operator-mistakes review: nothing said which of the two keys the store was under).
    public var ignoredMasterKeyFile: URL?
    /// `KMS_` settings given that kms reads nowhere (misspelled?): warned about at start.
    public var unreadSettings: [String] = []

    /// Limits set where they stop protecting, said at start-up and by `kms doctor` (a review of 2026-12-06:
    /// both were taken silently). Warned, not refused: a setting an older version took must not stop a start.
    public var limitWarnings: [String] {
        var warnings: [String] = []
        if maxConnections < OpenFileLimit.smallestCap {
            warnings.append(
                "KMS_MAX_CONNECTIONS=\(maxConnections) is below \(OpenFileLimit.smallestCap): hosts off the allowlist "
                    + "share a tenth of it (at least one), so one of them holding its connections (a head sent "
                    + "slowly, again after each header timeout) or a few hosts keep every client out; raise it")
        }
        if maxBodyBytes > Self.largestUsefulBodyLimit {
            warnings.append(
                "KMS_MAX_BODY_BYTES=\(maxBodyBytes) is more than any route takes (a sealed 64 KiB encrypt with its "
                    + "aad is about 240 KiB), and bodies being read may hold 64 of it at once, a quarter of that "
                    + "from one host, before any token is checked: lower it to the default (1 MiB)")
        }
        return warnings
    }

    /// The largest `KMS_MAX_BODY_BYTES` not warned about.
    public static let largestUsefulBodyLimit = 16 << 20
    /// What is loose about the `.env` read (its mode): warned about at start.
    public var dotEnvWarnings: [String] = []
    public var sessions = SessionPolicy()
    public var keyGraceMs: Int64 = 604_800_000
    /// Versions a key may have (`KeyLifecycle.maxVersions`): an operator may lower the ceiling,
    /// not raise it, since past about 28,000 a key's metadata outgrows what a client reads.
    public var keyMaxVersions = KeyLifecycle.versionCeiling
    /// `KMS_MAX_KEYS` (`KeyLifecycle.maxKeys`).
    public var maxKeys = 10_000
    /// Why a log begins with `audit.new-log` (an empty or missing log under an older audit key), as
    /// `kms serve` and the verbs run beside a stopped server both say it: on PostgreSQL every
    /// instance after the first begins so.
    public var newLogReason: String {
        store == .file
            ? "the store's audit key is older than this log: the earlier log was moved, deleted or emptied, or the first start failed before it wrote one"
            : "the store's audit key is older than this log: this instance is new, or its earlier log was moved, deleted or emptied"
    }

    /// Why a log begins with `audit.new-log` when the store was started before (it holds a client, which a
    /// first start enrols after its audit key and log exist) but holds no audit key and no log: both removed together leave no other trace (an operator-mistakes
    /// review: the new chain began at seq 1 unmarked, and doctor said it verified).
    public static let missingAuditKeyReason =
        "the store was started before, but its audit key and its log are both gone (moved or deleted while the server was stopped): a new audit key and a new chain begin here, and the earlier log, with the key that verifies it, is not here"

    /// How loudly a new log is said: a warning on the file store, where it means a log went; a
    /// notice on PostgreSQL, where every new instance begins one.
    public var newLogLevel: Logger.Level { store == .file ? .warning : .notice }

    /// The key lifecycle every part of the server and the offline commands share.
    public var keyLifecycle: KeyLifecycle {
        KeyLifecycle(graceMs: keyGraceMs, maxVersions: keyMaxVersions, maxKeys: maxKeys)
    }
    /// lifecycle-v1: the key scheduler's period.
    public var schedulerIntervalMs: Int64 = 60_000
    public var environment = Environment.development
    public var logLevel = Logger.Level.info
    public var maxBodyBytes = 1_048_576
    /// Slow-client limits (issue 17): see `ConnectionGuard`.
    public var headerTimeoutMs: Int64 = 10_000
    public var bodyTimeoutMs: Int64 = 30_000
    public var idleTimeoutMs: Int64 = 30_000
    public var maxConnections = 1_000
    /// Key exchanges per second per client address (RSA work is bounded too).
    public var keyExchangeRate = 50
    /// identity-v1 section 8: `required` (enrolled clients, grants) or `off` (protocol-v1).
    public enum ClientAuth: String, Sendable { case required, off }

    public var clientAuth = ClientAuth.required
    /// lifecycle-v1 rule 9.1: added to every clock reading of the server; tests only.
    public var testClockOffsetMs: Int64 = 0
    /// The bootstrap admin's key file (identity-v1 section 6).
    public var adminKeyFile = URL(fileURLWithPath: "./data/admin.key")
    /// aws-kms-v1: the AWS-compatible listener; nil when off.
    public var aws: AWSConfiguration?
    public enum Store: String, Sendable { case file, postgres }

    public var store = Store.file
    public var databaseURL: String?
    public var databasePrefix = "kms_"
    /// How long each PostgreSQL call may take before the request is answered
    /// `503 server_busy` (a database across a slow link, or a loaded machine,
    /// may need more than 6 s). At most 15 s, as the audit timeout: the limit
    /// is per call, and a request makes a few in a row.
    public var databaseTimeoutMs: Int64 = 6_000
    /// `databaseTimeoutMs` as every opening of the database takes it.
    public var databaseCallTimeout: Duration { .milliseconds(databaseTimeoutMs) }
    public var auditLog = URL(fileURLWithPath: "./data/audit.log")
    public var auditMaxBytes = 67_108_864
    /// How long an audited operation waits for each audit entry before
    /// answering `503 audit_unavailable` (a slow SD card may need more than
    /// 2 s). At most 15 s: a key change writes two durable entries, and the
    /// client library gives up after 30 s, so the `503` still arrives.
    public var auditTimeoutMs: Int64 = 2_000

    public static let defaultAllowlist = ["100.64.0.9", "127.0.0.0/8", "::1"]
    public static let defaultTrustedProxies = ["127.0.0.0/8", "::1"]

    /// The defaults of api-v1.md.
    public init() {
        allowlist = Self.defaultAllowlist.compactMap { try? AddressRange(parsing: $0) }
        trustedProxies = Self.defaultTrustedProxies.compactMap { try? AddressRange(parsing: $0) }
    }

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let variable: String
        public let reason: String
        public var description: String { "\(variable): \(reason)" }
    }

    /// Reads the process environment over `.env` in the working directory.
    public static func fromProcessEnvironment(dotEnvPath: String = ".env") throws -> KMSConfiguration {
        var values: [String: String] = [:]
        // No `.env` is no settings; one that cannot be read stops the start (api-v1: nothing falls back
        // silently): served without it, the KMS would bind every interface with the default allowlist.
        let dotEnv: Data?
        var isFolder: ObjCBool = false
        do {
            // A folder named .env (a Python virtualenv) is not a settings file: there is none.
            let folder =
                FileManager.default.fileExists(atPath: dotEnvPath, isDirectory: &isFolder) && isFolder.boolValue
            dotEnv = folder ? nil : try DurableFile.readIfPresent(URL(fileURLWithPath: dotEnvPath))
        } catch {
            throw Invalid(variable: dotEnvPath, reason: "cannot be read (\(error.description))")
        }
        if let dotEnv {
            guard let text = String(data: dotEnv, encoding: .utf8) else {
                throw Invalid(variable: dotEnvPath, reason: "is not UTF-8 text")
            }
            values = try DotEnv.parse(text)
        }
        let fromFile = values
        for (key, value) in ProcessInfo.processInfo.environment { values[key] = value }
        var config = try KMSConfiguration(environment: values)
        if dotEnv != nil { config.dotEnvWarnings = Self.looseDotEnv(dotEnvPath, holding: fromFile) }
        return config
    }

    /// The words of `looseDotEnv`'s group-writable warning, which `kms doctor` reports as a warning only.
    public static let groupWritableDotEnv = "is writable by its group"

    /// The path settings given (or defaulted) as relative paths: read from the folder `kms serve` starts
    /// in, so a start from another folder finds no store there and makes a new one (an operator-mistakes
    /// hunt: only the identity's generation notice said so). Named at start when a new master key is made.
    public var relativePathSettings: [String] {
        var paths = [("KMS_AUDIT_LOG", auditLog), ("KMS_ADMIN_KEY_FILE", adminKeyFile)]
        if store == .file { paths.insert(("KEY_STORE_PATH", keyStorePath), at: 0) }
        if masterKeyBase64 == nil { paths.append(("KMS_MASTER_KEY_FILE", masterKeyFile)) }
        return paths.filter { !$0.1.relativePath.hasPrefix("/") }.map(\.0)
    }

    /// The master key systemd passes as a credential, not used because another setting wins (warned at
    /// start and by `kms doctor`).
    public var ignoredCredentialWarning: String? {
        guard let ignored = ignoredCredentialKey else { return nil }
        let winner = (masterKeyBase64 ?? "").isEmpty ? "KMS_MASTER_KEY_FILE" : "KMS_MASTER_KEY"
        return
            "the master key systemd passes as a credential (\(ignored.path)) is not used: \(winner) is set and wins; unset it to use the credential"
    }

    /// Settings given that kms does not read, by name only (a value may be a secret set under a wrong name).
    public var unreadSettingsWarning: String? {
        guard !unreadSettings.isEmpty else { return nil }
        return
            "settings that kms does not read, so their defaults apply (misspelled? `kms serve --help` lists every one; the allowlist is KMS_WHITELIST): \(ConfigVariable.described(unreadSettings))"
    }

    /// Settings that are valid but seldom meant, warned about at start (an operator-mistakes review): a
    /// master key file that another setting overrides, and a grace period of 0, with which each rotation
    /// retires the version before it at once.
    public var settingWarnings: [String] {
        var warnings: [String] = []
        if let file = ignoredMasterKeyFile {
            warnings.append(
                "KMS_MASTER_KEY is set and wins over KMS_MASTER_KEY_FILE (\(file.path)), which is not read: unset the one you do not mean"
            )
        }
        if store == .file, databaseURL != nil {
            // A second instance without KMS_STORE=postgres started on an empty file store of its own, with a
            // new identity, without a word (a review). `kms migrate` reads the URL with the file store set.
            warnings.append(
                "KMS_DATABASE_URL is set, but KMS_STORE is file (the default), so this server does not use the database; set KMS_STORE=postgres if it should (kms migrate reads the URL either way)"
            )
        }
        if keyGraceMs == 0 {
            warnings.append(
                "KMS_KEY_GRACE_MS is 0: each rotation retires the version before it at once, so what that version encrypted no longer decrypts (key_version_retired) unless it was rewrapped first; the default is 604800000 (7 days)"
            )
        }
        // Every address: said at start too, not only by doctor (a newcomer's walkthrough started one without a
        // word). Narrower ranges (a LAN) are doctor's to judge.
        let everyone = allowlist.filter { $0.prefixLength == 0 || ($0.network.isIPv4 && $0.prefixLength == 96) }
        if !everyone.isEmpty {
            warnings.append(
                "KMS_WHITELIST admits every address of a family (\(everyone.map { "\($0.description): every \($0.network.isIPv4 ? "IPv4" : "IPv6") address" }.joined(separator: ", "))): anyone who can reach the port may start key exchanges and use what an enrolled key allows; list your devices' VPN addresses (docs/threat-model.md)"
            )
        }
        return warnings
    }

    /// What is loose about a `.env` that was read (a probe: a world-writable one set the allowlist and the
    /// trusted proxies without a word, and one holding the master key was readable by every user while
    /// a `master.key` file so is a failure of `kms doctor`).
    public static func looseDotEnv(_ path: String, holding values: [String: String]) -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        var warnings: [String] = []
        if info.st_mode & 0o002 != 0 {
            warnings.append(
                "\(path) is writable by other users: whoever can write it chooses the allowlist, the trusted proxies and the keys' store; chmod 600 it"
            )
        } else if info.st_mode & 0o020 != 0 {
            warnings.append(
                "\(path) \(groupWritableDotEnv): its members choose the allowlist, the trusted proxies and the keys' store; chmod 600 it unless the group is only you"
            )
        }
        // A database URL is a secret when it holds a password (a socket URL with peer authentication has none).
        let secrets = ["KMS_MASTER_KEY", "KMS_DATABASE_URL"].filter { name in
            guard let value = values[name], !value.isEmpty else { return false }
            // One that does not parse may still hold a password: counted (the second diff review).
            return name != "KMS_DATABASE_URL" || (URLComponents(string: value).map { $0.password != nil } ?? true)
        }
        if info.st_mode & 0o044 != 0, !secrets.isEmpty {
            warnings.append(
                "\(path) holds \(secrets.joined(separator: " and ")) and other users can read it; chmod 600 it")
        }
        return warnings
    }

    /// Validates `environment` (variable name to value).
    public init(environment values: [String: String]) throws(Invalid) {
        self.init()
        let reader = ConfigReader(values: values)
        unreadSettings = ConfigVariable.unread(in: values.keys)
        host = try reader.listenHost("KMS_HOST") ?? host
        port = try reader.integer("KMS_PORT", in: 1...65535).map(Int.init) ?? port
        if let list = try reader.addressList("KMS_WHITELIST", emptyMeansUnset: true) { allowlist = list }
        if let list = try reader.addressList("KMS_TRUSTED_PROXIES", emptyMeansUnset: false) { trustedProxies = list }
        keyStorePath = try reader.setting("KEY_STORE_PATH").map { URL(fileURLWithPath: $0) } ?? keyStorePath
        if let file = try reader.setting("KMS_MASTER_KEY_FILE") {
            masterKeyFile = URL(fileURLWithPath: file)
        } else if let credentials = values["CREDENTIALS_DIRECTORY"], !credentials.isEmpty,
            FileManager.default.fileExists(atPath: credentials + "/master.key")
                || DurableFile.isUnreachable(URL(fileURLWithPath: credentials + "/master.key"))
        {
            // systemd's LoadCredential=master.key:… (deploy/kms.service): the key never sits in the store.
            // Only when given: a unit passing other credentials only (a TLS key) keeps the default file.
            masterKeyFile = URL(fileURLWithPath: credentials).appendingPathComponent("master.key")
        }
        masterKeyBase64 = try reader.string("KMS_MASTER_KEY")
        if masterKeyBase64 != nil, try reader.setting("KMS_MASTER_KEY_FILE") != nil {
            ignoredMasterKeyFile = masterKeyFile
        }
        if let credentials = values["CREDENTIALS_DIRECTORY"], !credentials.isEmpty {
            let credential = URL(fileURLWithPath: credentials).appendingPathComponent("master.key")
            if credential.standardizedFileURL != masterKeyFile.standardizedFileURL
                || !(masterKeyBase64 ?? "").isEmpty, FileManager.default.fileExists(atPath: credential.path)
            {
                ignoredCredentialKey = credential
            }
        }
        let day: Int64 = 86_400_000
        sessions.ttlMs = try reader.integer("KMS_SESSION_TTL_MS", in: 1_000...(365 * day)) ?? sessions.ttlMs
        sessions.sliding = try reader.boolean("KMS_SESSION_SLIDING") ?? sessions.sliding
        sessions.maxLifetimeMs =
            try reader.integer("KMS_SESSION_MAX_LIFETIME_MS", in: 1_000...(365 * day)) ?? sessions.maxLifetimeMs
        sessions.initTtlMs = try reader.integer("KMS_SESSION_INIT_TTL_MS", in: 1_000...day) ?? sessions.initTtlMs
        sessions.pendingPerAddress =
            try reader.integer("KMS_PENDING_PER_ADDRESS", in: 1...1_000_000).map(Int.init) ?? sessions.pendingPerAddress
        sessions.pendingMax =
            try reader.integer("KMS_PENDING_MAX", in: 1...10_000_000).map(Int.init) ?? sessions.pendingMax
        sessions.sessionsMax =
            try reader.integer("KMS_SESSIONS_MAX", in: 1...100_000_000).map(Int.init) ?? sessions.sessionsMax
        sessions.sessionsPerClient =
            try reader.integer("KMS_SESSIONS_PER_CLIENT", in: 1...100_000_000).map(Int.init)
            ?? sessions.sessionsPerClient
        sessions.rotateWindowMs = try reader.integer("KMS_ROTATE_WINDOW_MS", in: 1...day) ?? sessions.rotateWindowMs
        sessions.rotateMax = try reader.integer("KMS_ROTATE_MAX", in: 1...1_000_000).map(Int.init) ?? sessions.rotateMax
        sessions.tokenPrefix = try reader.tokenPrefix("KMS_TOKEN_PREFIX")
        keyGraceMs = try reader.integer("KMS_KEY_GRACE_MS", in: 0...(100 * 365 * day)) ?? keyGraceMs
        keyMaxVersions =
            try reader.integer("KMS_KEY_MAX_VERSIONS", in: 2...Int64(KeyLifecycle.versionCeiling)).map(Int.init)
            ?? keyMaxVersions
        maxKeys = try reader.integer("KMS_MAX_KEYS", in: 1...10_000_000).map(Int.init) ?? maxKeys
        schedulerIntervalMs =
            try reader.integer("KMS_SCHEDULER_INTERVAL_MS", in: 1000...3_600_000) ?? schedulerIntervalMs
        if let text = reader.choice("KMS_ENV") {
            guard let value = Environment(rawValue: text.lowercased()) else {
                throw Invalid(
                    variable: "KMS_ENV", reason: "must be development or production, got \(ConfigReader.shown(text))")
            }
            environment = value
        }
        if let text = reader.choice("KMS_LOG_LEVEL") {
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw Invalid(
                    variable: "KMS_LOG_LEVEL",
                    reason:
                        "must be trace, debug, info, notice, warning, error or critical, got \(ConfigReader.shown(text))"
                )
            }
            logLevel = level
        }
        maxBodyBytes =
            try reader.integer("KMS_MAX_BODY_BYTES", in: 1_024...(1 << 30)).map(Int.init) ?? maxBodyBytes
        headerTimeoutMs = try reader.integer("KMS_HEADER_TIMEOUT_MS", in: 100...3_600_000) ?? headerTimeoutMs
        bodyTimeoutMs = try reader.integer("KMS_BODY_TIMEOUT_MS", in: 100...3_600_000) ?? bodyTimeoutMs
        idleTimeoutMs = try reader.integer("KMS_IDLE_TIMEOUT_MS", in: 100...3_600_000) ?? idleTimeoutMs
        maxConnections = try reader.integer("KMS_MAX_CONNECTIONS", in: 1...1_000_000).map(Int.init) ?? maxConnections
        keyExchangeRate =
            try reader.integer("KMS_KEY_EXCHANGE_RATE", in: 1...1_000_000).map(Int.init) ?? keyExchangeRate
        if let text = reader.choice("KMS_CLIENT_AUTH") {
            guard let value = ClientAuth(rawValue: text.lowercased()) else {
                throw Invalid(
                    variable: "KMS_CLIENT_AUTH", reason: "must be required or off, got \(ConfigReader.shown(text))")
            }
            clientAuth = value
        }
        testClockOffsetMs =
            try reader.integer("KMS_TEST_CLOCK_OFFSET_MS", in: (-100 * 365 * day)...(100 * 365 * day)) ?? 0
        if testClockOffsetMs != 0, environment == .production {
            throw Invalid(
                variable: "KMS_TEST_CLOCK_OFFSET_MS",
                reason: "moves the server's clock; it is refused with KMS_ENV=production")
        }
        adminKeyFile = try reader.setting("KMS_ADMIN_KEY_FILE").map { URL(fileURLWithPath: $0) } ?? adminKeyFile
        aws = try AWSConfiguration.read(reader, host: host)
        if let text = reader.choice("KMS_STORE") {
            guard let value = Store(rawValue: text.lowercased()) else {
                throw Invalid(
                    variable: "KMS_STORE", reason: "must be file or postgres, got \(ConfigReader.shown(text))")
            }
            store = value
        }
        databaseURL = try reader.string("KMS_DATABASE_URL")
        if let prefix = try reader.setting("KMS_DATABASE_PREFIX") {
            // The pool's own rule (it checks again: the prefix reaches SQL unescaped).
            guard PostgresDatabase.isValidPrefix(prefix) else {
                throw Invalid(variable: "KMS_DATABASE_PREFIX", reason: "must be \(PostgresDatabase.prefixRule)")
            }
            databasePrefix = prefix
        }
        databaseTimeoutMs = try reader.integer("KMS_DATABASE_TIMEOUT_MS", in: 1_000...15_000) ?? databaseTimeoutMs
        if store == .postgres, databaseURL == nil {
            throw Invalid(variable: "KMS_DATABASE_URL", reason: "is required with KMS_STORE=postgres")
        }
        auditLog = try reader.setting("KMS_AUDIT_LOG").map { URL(fileURLWithPath: $0) } ?? auditLog
        auditMaxBytes =
            try reader.integer("KMS_AUDIT_MAX_BYTES", in: 4_096...(1 << 40)).map(Int.init) ?? auditMaxBytes
        auditTimeoutMs = try reader.integer("KMS_AUDIT_TIMEOUT_MS", in: 100...15_000) ?? auditTimeoutMs
    }

    /// A database URL without its password, for logs.
    static func redactedURL(_ url: String) -> String {
        // Only a postgres:// URL with a host is shown at all: libpq's `host=… password=…` form parsed as a
        // path and was logged whole, password included (a probe), and so was a fragment.
        // Nor one with an `@` after its host: a password's raw `@` (or `?`, `#`, `/`) makes URLComponents split it
        // there, and its rest would be shown as the host, path or a parameter's name (a review).
        guard var components = URLComponents(string: url),
            ["postgres", "postgresql"].contains(components.scheme?.lowercased() ?? ""), components.host != nil,
            url.filter({ $0 == "@" }).count <= 1,
            !(components.percentEncodedPath + (components.percentEncodedQuery ?? "")
                + (components.percentEncodedFragment ?? "")).contains("@")
        else { return "(not a postgres:// URL)" }
        components.fragment = nil
        if components.password != nil { components.password = "redacted" }
        // Only the two parameters start-up accepts are shown; anything else (refused a moment later) is
        // dropped, name and all: a name may be the rest of a password.
        components.queryItems = components.queryItems?.filter { ["sslmode", "sslrootcert", "host"].contains($0.name) }
        if components.queryItems?.isEmpty == true { components.queryItems = nil }
        return components.string ?? "(unparsable)"
    }

    /// The configuration as it may be logged: no master key, no database password.
    public var loggable: Logger.Metadata {
        [
            "host": "\(host)", "port": "\(port)",
            "whitelist": "\(allowlist.map(\.description).joined(separator: ","))",
            "trustedProxies": "\(trustedProxies.map(\.description).joined(separator: ","))",
            "keyStorePath": "\(keyStorePath.path)",
            "masterKey": "\(masterKeyBase64 == nil ? "file \(masterKeyFile.path)" : "KMS_MASTER_KEY")",
            "sessionTtlMs": "\(sessions.ttlMs)", "sliding": "\(sessions.sliding)",
            "maxLifetimeMs": "\(sessions.maxLifetimeMs)", "keyGraceMs": "\(keyGraceMs)",
            "keyMaxVersions": "\(keyMaxVersions)", "maxKeys": "\(maxKeys)",
            "schedulerIntervalMs": "\(schedulerIntervalMs)",
            "environment": "\(environment.rawValue)", "maxBodyBytes": "\(maxBodyBytes)",
            "headerTimeoutMs": "\(headerTimeoutMs)", "bodyTimeoutMs": "\(bodyTimeoutMs)",
            "idleTimeoutMs": "\(idleTimeoutMs)", "maxConnections": "\(maxConnections)",
            "keyExchangeRate": "\(keyExchangeRate)", "clientAuth": "\(clientAuth.rawValue)",
            "testClockOffsetMs": "\(testClockOffsetMs)",
            "adminKeyFile": "\(adminKeyFile.path)",
            "auditLog": "\(auditLog.path)", "auditMaxBytes": "\(auditMaxBytes)",
            "auditTimeoutMs": "\(auditTimeoutMs)", "store": "\(store.rawValue)",
            "database": "\(databaseURL.map(Self.redactedURL) ?? "none")", "databaseTimeoutMs": "\(databaseTimeoutMs)",
            "tokenPrefix": "\(sessions.tokenPrefix == nil ? "none" : "set")",
            "awsPort": "\(aws.map { "\($0.port)" } ?? "off")",
        ]
    }
}

/// Printed or dumped, the configuration is what `loggable` shows: no master
/// key, no database password (a review).
extension KMSConfiguration: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "KMSConfiguration("
            + loggable.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            + ")"
    }

    public var customMirror: Mirror {
        Mirror(self, children: loggable.sorted { $0.key < $1.key }.map { (label: $0.key, value: "\($0.value)") })
    }
}
