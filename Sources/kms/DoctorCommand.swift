import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import KMSClient
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSServer
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// `kms doctor`: checks a deployment as its owner would (issue 20), with
/// the server's configuration, and says what to fix. Exit status 1 when any
/// check fails; warnings alone exit 0.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract:
            "Check this deployment: file modes, where the master key is, allowlist, proxies, audit log, clocks, certificate.",
        discussion: """
            Run it as the service's user with the service's environment (on systemd: `kmsctl doctor`, or `systemd-run --pty \
            -p DynamicUser=yes -p User=kms -p StateDirectory=kms -p StateDirectoryMode=0700 \
            --property=EnvironmentFile=/etc/kms/kms.env … kms doctor`: without the mode the state folder becomes 0755; \
            see docs/deploy.md). \
            Live checks ask the server at --url (default http://KMS_HOST:KMS_PORT).
            """)

    @Option(help: "Where the server answers, for the live checks.") var url: String?

    enum Level: String { case ok = "ok  ", skip = "skip", warn = "WARN", fail = "FAIL" }

    struct Finding {
        let level: Level
        let check: String
        let message: String
    }

    func run() async throws {
        let config = try KMSConfiguration.forCommand()
        var findings: [Finding] = []
        func add(_ level: Level, _ check: String, _ message: String) {
            findings.append(Finding(level: level, check: check, message: message))
        }
        Self.checkFolders(config, add)
        Self.checkSecretFiles(config, add)
        // Before the first start (a file store whose folder is not there yet) the master key, the store's
        // secrets and the audit log do not exist: those checks are skipped, as deploy.md says (a review
        // found three FAILs on a deployment that had only been configured).
        let neverStarted =
            config.store == .file && !FileManager.default.fileExists(atPath: config.keyStorePath.path)
            && !DurableFile.isUnreachable(config.keyStorePath)
        Self.checkMasterKey(config, neverStarted: neverStarted, add)
        Self.checkAllowlist(config, add)
        Self.checkTrustedProxies(config, add)
        Self.checkLimits(config, add)
        Self.checkSettings(config, add)
        let masterKey = try? MasterKeyLoader.loadExisting(base64: config.masterKeyBase64, file: config.masterKeyFile)
        var database: PostgresDatabase?
        if config.store == .postgres, let url = config.databaseURL {
            var logger = Logger(label: "kms-doctor")
            logger.logLevel = .critical
            do {
                database = try await PostgresDatabase(
                    url: url, prefix: config.databasePrefix, logger: logger, migrate: false,
                    callTimeout: config.databaseCallTimeout)
            } catch {
                add(.fail, "database", "\(error)")
            }
        }
        defer { database?.shutdown() }
        await Self.checkAdminKey(config, database: database, add)
        // The database that holds the store cannot be reached: what it holds is not judged. Judging the file
        // store's folder in its place told an operator, during an outage, to move a good audit log aside (a
        // PostgreSQL operator's walkthrough).
        let secrets = BackupSetup.secrets(config, database)
        if config.store == .postgres, database == nil {
            add(.skip, "master key opens", Self.databaseDown)
        } else {
            // Skipped only when no master key is configured at all: one that is there but cannot be read fails.
            let noKeyYet =
                neverStarted && config.masterKeyBase64 == nil
                && !FileManager.default.fileExists(atPath: config.masterKeyFile.path)
            await Self.checkMasterKeyOpens(masterKey, secrets: secrets, neverStarted: noKeyYet, add)
        }
        // With the database down, only what is on this machine is judged: the log's writability, a TLS key
        // file's mode and a certificate file's dates (a review: all were skipped).
        let storeMasterKey = config.store == .postgres && database == nil ? nil : masterKey
        await Self.checkAudit(
            config, secrets: secrets, masterKey: storeMasterKey, neverStarted: neverStarted,
            storeReachable: database != nil || config.store == .file, add)
        await Self.checkCertificate(
            config, secrets: secrets, masterKey: storeMasterKey,
            storeReachable: database != nil || config.store == .file, add)
        Self.checkKeyRecords(config, neverStarted: neverStarted, add)
        if let database { await Self.checkClock(database, add) }
        await Self.checkProxy(config, url: url ?? Self.defaultURL(config), add)

        for finding in findings {
            printShown("\(finding.level.rawValue)  \(finding.check): \(finding.message)")
        }
        let failed = findings.filter { $0.level == .fail }.count
        let warned = findings.filter { $0.level == .warn }.count
        let skipped = findings.filter { $0.level == .skip }.count
        printShown(
            "\(failed) failed, \(warned) warnings, \(findings.count - failed - warned - skipped) ok, \(skipped) not checked"
        )
        if failed > 0 { throw ExitCode(1) }
    }

    typealias Report = (Level, String, String) -> Void

    static func defaultURL(_ config: KMSConfiguration) -> String {
        let host = ["0.0.0.0", "::"].contains(config.host) ? "127.0.0.1" : config.host
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(config.port)"
    }

    static func mode(_ path: String) -> mode_t? {
        DurableFile.mode(of: URL(fileURLWithPath: path)).map { $0 & 0o777 }
    }

    /// The store folder 0700, every file in it 0600 (and nobody else's).
    static func checkFolders(_ config: KMSConfiguration, _ report: Report) {
        let store = config.keyStorePath.path
        guard let folderMode = mode(store) else {
            // On PostgreSQL the keys are in the database and no start makes this folder; one left by a
            // file store (before `kms migrate`) is still checked below, as it holds wrapped keys.
            if config.store == .postgres {
                return report(.ok, "store", "in PostgreSQL (KMS_DATABASE_URL); no key store folder on this machine")
            }
            return report(.warn, "store", "\(store) does not exist yet (KEY_STORE_PATH): the first start creates it")
        }
        // On PostgreSQL a folder here is a file store left behind (by `kms migrate`): named as such.
        let check = config.store == .postgres ? "leftover file store" : "store"
        var loose: [String] = []
        if folderMode & 0o077 != 0 { loose.append("\(store) is \(String(folderMode, radix: 8))") }
        guard (try? FileManager.default.contentsOfDirectory(atPath: store)) != nil else {
            return report(.fail, check, "\(store) cannot be listed by this user: run doctor as the service's user")
        }
        for (path, fileMode, isFolder) in DurableFile.entries(under: config.keyStorePath) {
            if fileMode & 0o077 != 0 {
                loose.append("\(path) is \(String(fileMode, radix: 8))")
            } else if !isFolder, fileMode & 0o700 != 0o600, fileMode & 0o100 != 0 {
                loose.append("\(path) is executable")
            }
        }
        if loose.isEmpty {
            report(.ok, check, "\(store) is 0700 and its files 0600")
        } else {
            report(
                .fail, check,
                "other users can read the store: \(loose.prefix(5).joined(separator: "; ")); fix: chmod -R go-rwx \(store)"
            )
        }
    }

    /// The admin key and its folder, the audit log and the folder holding the store: the service's alone.
    static func checkSecretFiles(_ config: KMSConfiguration, _ report: Report) {
        var paths = [
            config.adminKeyFile.path, config.auditLog.path, config.keyStorePath.deletingLastPathComponent().path,
        ]
        // A 0600 key in a folder others can list and whose files they can replace is not the service's alone.
        if FileManager.default.fileExists(atPath: config.adminKeyFile.path) {
            paths.append(config.adminKeyFile.deletingLastPathComponent().path)
        }
        // The audit log's rotated files are the log as much as the current one (a probe: only that was checked).
        paths += AuditFiles.chain(for: config.auditLog).map(\.path).filter { $0 != config.auditLog.path }
        // The store's folder is often the admin key's too: each path once (an operator saw one named twice).
        var seen = Set<String>()
        paths = paths.filter { seen.insert(URL(fileURLWithPath: $0).standardizedFileURL.path).inserted }
        var loose = paths.compactMap { path -> String? in
            guard let fileMode = mode(path), fileMode & 0o077 != 0 else { return nil }
            return "\(path) is \(String(fileMode, radix: 8))"
        }
        var fixes = loose.isEmpty ? [] : ["chmod go-rwx on each"]
        // The log's folder need not be private (KMS_AUDIT_LOG may be under /var/log), but whoever can write
        // it, or owns it, can remove or replace the log's files: a start then begins a new chain, and the
        // old one is lost. Its fix is go-w, not go-rwx, which would break a shared log folder (a review).
        let auditFolder = config.auditLog.deletingLastPathComponent().path
        if !paths.contains(auditFolder) {
            var info = stat()
            if stat(auditFolder, &info) == 0 {
                let folderMode = info.st_mode & 0o777
                if folderMode & 0o022 != 0 {
                    loose.append(
                        "\(auditFolder), the audit log's folder, is \(String(folderMode, radix: 8)) (others can replace the log)"
                    )
                    fixes.append(
                        "give the log a folder of its own that only the service writes (under the unit one in /var/lib/kms, e.g. KMS_AUDIT_LOG=/var/lib/kms/audit/audit.log: docs/deploy.md), or chmod go-w \(auditFolder) if nothing else writes there"
                    )
                }
                if let owner = DurableFile.foreignOwner(info, user: serviceUser(config) ?? getuid()) {
                    loose.append(
                        "\(auditFolder), the audit log's folder, belongs to uid \(owner), neither the store's owner nor root (its owner can replace the log)"
                    )
                    fixes.append("chown it to the service's user or root")
                }
            }
        }
        // What `kms serve` refuses to start on: the store's or the master key's folder another user owns or
        // every user may write (the diff review: doctor passed what serve refused).
        // Run as the service's user (deploy.md), that user; as root, the store's owner when there is a store.
        if let service = geteuid() == 0 ? serviceUser(config) : geteuid(),
            let refusal = untrustedFolders(config, user: service)
        {
            loose.append(refusal)
            fixes.append("as said (kms serve refuses to start on it)")
        }
        if let service = geteuid() == 0 ? serviceUser(config) : geteuid() {
            let above = untrustedAncestors(config, user: service)
            loose += above
            if !above.isEmpty { fixes.append("as said (kms serve warns about it)") }
        }
        // A `.env` others may write (it chooses the allowlist) or read while it holds a secret: a `master.key`
        // so is a failure, and so is the same key in a `.env` (a review: doctor passed it).
        // Group-writable is only warned about, as for folders (umask 002 gives the user's own group).
        let groupWritable = config.dotEnvWarnings.filter { $0.contains(KMSConfiguration.groupWritableDotEnv) }
        let dotEnv = config.dotEnvWarnings.filter { !$0.contains(KMSConfiguration.groupWritableDotEnv) }
        if !dotEnv.isEmpty {
            loose += dotEnv
            fixes.append("chmod 600 the .env")
        }
        for warning in groupWritable { report(.warn, ".env", warning) }
        // The admin key is enrolled with every permission at a first start: another user's copy is that user's.
        if let service = serviceUser(config),
            let owner = DurableFile.foreignOwner(of: config.adminKeyFile, user: service)
        {
            loose.append("\(config.adminKeyFile.path) belongs to uid \(owner), neither the service's user nor root")
            fixes.append("chown the admin key to the service's user, or delete it if you did not put it there")
        }
        if loose.isEmpty {
            report(
                .ok, "file modes",
                "admin key and its folder, audit log and its folder, data folder are the service's alone")
        } else {
            report(.fail, "file modes", "\(loose.joined(separator: "; ")); fix: \(fixes.joined(separator: "; "))")
        }
    }

    /// The service's user is whoever owns the store (doctor may run as root, with sudo: a review found a
    /// right set-up refused that way when owners were compared with doctor's own user); nil before the
    /// store exists (or on PostgreSQL, with no store folder), where the owner checks are not made: doctor's
    /// user may not be the service's (the diff review).
    static func serviceUser(_ config: KMSConfiguration) -> uid_t? {
        var store = stat()
        return stat(config.keyStorePath.path, &store) == 0 ? store.st_uid : nil
    }

    /// The master key apart from the store, readable by the service alone.
    static func checkMasterKey(_ config: KMSConfiguration, neverStarted: Bool, _ report: Report) {
        if config.masterKeyBase64 != nil {
            return report(
                .warn, "master key",
                "KMS_MASTER_KEY is in the environment: anything that reads the service's environment has it; use a credential (LoadCredential=) or a file on another disk"
            )
        }
        let key = config.masterKeyFile.standardizedFileURL.path
        if DurableFile.isUnreachable(config.masterKeyFile) {
            return report(
                .fail, "master key",
                "\(key): permission denied: run doctor as the service's user, with its settings (deploy.md's kmsctl doctor)"
            )
        }
        guard let keyMode = mode(key) else {
            if neverStarted {
                return report(
                    .skip, "master key",
                    "not checked: no master key at \(key) yet (never started; the first start makes it 0600)")
            }
            return report(.fail, "master key", "no master key at \(key) (KMS_MASTER_KEY_FILE)")
        }
        if DurableFile.isLooseSecret(mode: keyMode, of: URL(fileURLWithPath: key)) {
            return report(
                .fail, "master key", "\(key) is mode \(String(keyMode, radix: 8)); fix: chmod 600 \(key)")
        }
        if let service = serviceUser(config),
            let owner = DurableFile.foreignOwner(of: URL(fileURLWithPath: key), user: service)
        {
            return report(
                .fail, "master key",
                "\(key) belongs to uid \(owner), neither the service's user nor root: that user can read and replace it; fix: chown it to the service's user or root"
            )
        }
        let store = config.keyStorePath.standardizedFileURL.path
        let keyFolder = (key as NSString).deletingLastPathComponent
        let storeParent = (store as NSString).deletingLastPathComponent
        if key.hasPrefix(store + "/") || keyFolder == storeParent || keyFolder == store {
            return report(
                .warn, "master key",
                "\(key) sits beside the store \(store): one stolen disk or backup gives both; keep it on another disk, a secret mount or a systemd credential (deploy/kms.service)"
            )
        }
        report(.ok, "master key", "\(key) is mode \(String(keyMode & 0o777, radix: 8)) and apart from the store")
    }

    /// The allowlist no wider than loopback and the VPN (Tailscale's ranges).
    static func checkAllowlist(_ config: KMSConfiguration, _ report: Report) {
        let narrow = ["127.0.0.0/8", "::1", "100.64.0.0/10", "fd7a:115c:a1e0::/48"].compactMap {
            try? AddressRange(parsing: $0)
        }
        let wide = config.allowlist.filter { range in !narrow.contains { range.isWithin($0) } }
        // Ranges of the VPN, not its devices: nodes others share into a tailnet have addresses there too, so
        // the project's advice is one address per device (threat-model.md; a review: doctor said ok to
        // 100.64.0.0/10 whole). Loopback ranges are this host's own.
        let vpn = narrow.filter { !$0.isWithin(narrow[0]) && !$0.isWithin(narrow[1]) }
        let shared = config.allowlist.filter { range in
            range.prefixLength < 128 && vpn.contains { range.isWithin($0) }
        }
        if !shared.isEmpty {
            report(
                .warn, "allowlist",
                "KMS_WHITELIST admits a range of VPN addresses, not only your devices: \(shared.map(\.description).joined(separator: ",")); on Tailscale, nodes others share into your tailnet have addresses there too: list each device's address instead (docs/threat-model.md)"
            )
        }
        if wide.isEmpty {
            guard shared.isEmpty else { return }
            report(
                .ok, "allowlist",
                "only loopback and VPN addresses: \(config.allowlist.map(\.description).joined(separator: ","))")
        } else {
            report(
                .warn, "allowlist",
                "KMS_WHITELIST reaches beyond loopback and the VPN: \(wide.map(\.description).joined(separator: ",")); narrow it to your devices' VPN addresses unless you mean it"
            )
        }
    }

    /// Trusted proxies the allowlist does not hold: they widen it (`ClientAddressResolver.proxiesBeyondAllowlist`).
    static func checkTrustedProxies(_ config: KMSConfiguration, _ report: Report) {
        let resolver = ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies)
        let beyond = resolver.proxiesBeyondAllowlist
        if let ranges = resolver.proxyRangesWarning {
            report(.warn, "trusted proxies", ranges)
        }
        if beyond.isEmpty {
            if resolver.proxyRangesWarning == nil {
                report(.ok, "trusted proxies", "every trusted proxy is on the allowlist (or none is trusted)")
            }
        } else {
            report(
                .warn, "trusted proxies",
                "KMS_TRUSTED_PROXIES holds \(beyond.map(\.description).joined(separator: ",")), ranges KMS_WHITELIST does not hold: anything at those addresses is let in by naming an allowlisted address in X-Forwarded-For; list only your proxy's own address there (empty trusts none)"
            )
        }
    }

    /// Limits set where they stop protecting (`KMSConfiguration.limitWarnings`).
    static func checkLimits(_ config: KMSConfiguration, _ report: Report) {
        let warnings = config.limitWarnings
        guard !warnings.isEmpty else {
            return report(.ok, "limits", "KMS_MAX_CONNECTIONS and KMS_MAX_BODY_BYTES protect as set")
        }
        for warning in warnings { report(.warn, "limits", warning) }
    }

    /// What `kms serve` warns about in the settings themselves: names it does not read (a misspelled
    /// `KMS_ALLOWLIST` left the default list, and doctor said the allowlist was fine; a review), a grace
    /// period of 0, a master key another setting overrides.
    static func checkSettings(_ config: KMSConfiguration, _ report: Report) {
        let warnings =
            [config.unreadSettingsWarning, config.ignoredCredentialWarning].compactMap { $0 } + config.settingWarnings
        guard !warnings.isEmpty else { return report(.ok, "settings", "every setting given is read, none overridden") }
        for warning in warnings { report(.warn, "settings", warning) }
    }

    /// `database`: the store's, on PostgreSQL (nil there: not reached, so a revocation is not known).
    static func checkAdminKey(_ config: KMSConfiguration, database: PostgresDatabase?, _ report: Report) async {
        if FileManager.default.fileExists(atPath: config.adminKeyFile.path) {
            // Already revoked (the registry says so): only the file is left to delete (a newcomer's walk: the
            // advice still said to revoke it; a PostgreSQL operator's walkthrough: on that store too).
            if let key = try? ClientKeyLookup.read(config.adminKeyFile.path),
                let client = await Self.storedClient(
                    fingerprint: ClientAuth.fingerprint(rawPublicKey: key.publicKey.rawRepresentation), config,
                    database: database), !client.active
            {
                return report(
                    .warn, "admin key",
                    "the bootstrap admin key \(config.adminKeyFile.path) is revoked (client \(client.name), \(client.clientId)) but still on the server: delete the file"
                )
            }
            report(
                .warn, "admin key",
                "the bootstrap admin key \(config.adminKeyFile.path) is still on the server: enrol your own key with clients:manage, then `kms clients revoke admin` and delete the file"
            )
        } else {
            report(.ok, "admin key", "no bootstrap admin key on the server")
        }
    }

    /// The registry's record of the key with `fingerprint`, revoked ones included.
    static func storedClient(fingerprint: String, _ config: KMSConfiguration, database: PostgresDatabase?) async
        -> StoredClient?
    {
        if config.store == .file {
            let stored = try? LocalClientStore.stored(at: LocalClientStore.file(in: config.keyStorePath))
            return stored?.first { $0.fingerprint == fingerprint }
        }
        guard let database else { return nil }
        return try? await PostgresClientStore(database: database).client(fingerprint: fingerprint)
    }

    /// The master key must open what the store holds, or the server will not start.
    static func checkMasterKeyOpens(
        _ masterKey: MasterKey?, secrets: any SecretBlobStore, neverStarted: Bool, _ report: Report
    ) async {
        guard let masterKey else {
            if neverStarted {
                return report(.skip, "master key opens", "not checked: the store holds no secrets yet (never started)")
            }
            return report(
                .fail, "master key opens", "the master key cannot be read (KMS_MASTER_KEY_FILE / KMS_MASTER_KEY)")
        }
        do {
            if try await IdentityKeyLoader.loadExisting(store: secrets, masterKey: masterKey) == nil {
                report(.skip, "master key opens", "not checked: the store holds no secrets yet (never started)")
            } else {
                report(.ok, "master key opens", "it opens the store's identity key")
            }
        } catch {
            report(
                .fail, "master key opens",
                "it does not open the store's identity key: this is another master key, or the store was changed")
        }
    }

    /// The database that holds the store cannot be reached (doctor says so above): what it holds is not judged.
    static let databaseDown = "not checked: its keys are in the database, which cannot be reached (above)"

    /// `storeReachable`: false on PostgreSQL with the database down; the log is then judged on this machine
    /// only (judging a file store's folder in the database's place told an operator, during an outage, to
    /// move a good audit log aside: a PostgreSQL operator's walkthrough).
    static func checkAudit(
        _ config: KMSConfiguration, secrets: any SecretBlobStore, masterKey: MasterKey?, neverStarted: Bool,
        storeReachable: Bool = true, _ report: Report
    ) async {
        let log = config.auditLog.path
        let folder = (log as NSString).deletingLastPathComponent
        guard
            !neverStarted || FileManager.default.fileExists(atPath: log)
                || FileManager.default.fileExists(atPath: folder)
        else {
            return report(
                .skip, "audit log",
                "not checked: \(folder) does not exist yet (KMS_AUDIT_LOG): the first start makes it")
        }
        let writable = FileManager.default.fileExists(atPath: log) ? access(log, W_OK) == 0 : access(folder, W_OK) == 0
        guard writable else {
            return report(.fail, "audit log", "\(log) is not writable: the server refuses audited operations (503)")
        }
        guard storeReachable else {
            let writableNow =
                FileManager.default.fileExists(atPath: log)
                ? "\(log) is writable" : "\(folder) is writable (no log yet)"
            return report(.skip, "audit log", "\(writableNow); its chain is \(databaseDown)")
        }
        guard FileManager.default.fileExists(atPath: log) else {
            // A file store with its audit key but no log was started before: its log went (an operator-mistakes
            // review: "does not exist yet" read as if nothing were wrong).
            if config.store == .file, (try? await secrets.blob(named: AuditFiles.keyBlob)) != nil {
                return report(
                    .warn, "audit log",
                    "\(log) is missing, but the store's audit key is there: the log was moved or deleted (or a first start failed before it wrote one); the next start begins a new chain marked audit.new-log: put the earlier log back first if you have it"
                )
            }
            return report(.warn, "audit log", "\(log) does not exist yet (KMS_AUDIT_LOG): the first start creates it")
        }
        // nil: not read (no master key, or the key did not open); .some(nil): the store holds none.
        var found: Curve25519.Signing.PrivateKey?? = nil
        if let masterKey {
            do {
                found = .some(try await AuditFiles.existingKey(store: secrets, masterKey: masterKey))
            } catch {
                found = nil
            }
        }
        guard let found else {
            return report(.warn, "audit log", "cannot read the audit key from the store: not verified")
        }
        // No audit key beside a log with entries: `kms serve` refuses to start on it, so doctor fails too (a
        // review found it a warning, where deploy.md says doctor fails on what serve would refuse).
        guard let key = found else {
            // The files serve judges by (rotated ones too, links followed).
            let hasEntries = !AuditFiles.filesWithEntries(config.auditLog).isEmpty
            return report(
                hasEntries ? .fail : .warn, "audit log",
                hasEntries
                    ? "the store holds no audit key, but \(log) has entries: kms serve refuses to start; restore the store's audit key from a backup, or move the log aside to begin a new one (docs/audit.md)"
                    : "the store holds no audit key yet: not verified")
        }
        // Older rotated files may have been archived: the chain is checked from the first one present.
        let verdict = AuditVerifier.verify(
            files: AuditFiles.chain(for: config.auditLog), publicKey: key.publicKey, checkpoint: nil,
            allowMidChainStart: true, lastLineMayBeInProgress: AuditWriterLock.isHeld(forLog: config.auditLog))
        // As `kms audit verify` would judge it, except that archived rotated files are allowed (a probe
        // found doctor green for an empty log, a crash's tail and deleted first entries, all of which
        // verify refuses); only a running server's last second of unsigned entries is left out.
        if let failure = verdict.failure {
            report(.fail, "audit log", "BROKEN after \(verdict.entries) valid entries: \(failure)")
        } else if verdict.entries == 0 {
            report(
                .warn, "audit log",
                "\(log) holds no entries, so nothing is verified: a wiped log looks like this (the next start begins a new chain at seq 1, which only a checkpoint kept elsewhere tells apart)"
            )
        } else if let unsigned = verdict.unsignedSummary, !verdict.unsignedOnlyAsALiveTail() {
            report(.warn, "audit log", "the chain holds, but \(unsigned)")
        } else if let start = verdict.newLogStarts.last, config.store == .file {
            // On PostgreSQL every instance after the first begins its log so: not a finding there.
            report(.warn, "audit log", "the chain holds, but \(AuditCommand.newLogNote(start))")
        } else if let first = verdict.first, first > 1 {
            report(
                .warn, "audit log",
                "the chain holds from seq \(first), but entries 1...\(first - 1) are not in these files (rotated files archived away, or deleted): checked from there on trust"
            )
        } else {
            report(.ok, "audit log", "writable; \(verdict.entries) entries verify (chain and checkpoint signatures)")
        }
    }

    /// A damaged key or alias file makes the server answer `503` to every request that needs it,
    /// key listings and backups included (a probe found doctor green while they failed).
    static func checkKeyRecords(_ config: KMSConfiguration, neverStarted: Bool, _ report: Report) {
        guard config.store == .file else {
            return report(
                .skip, "key records", "not checked on PostgreSQL: the server logs a damaged row when it reads one")
        }
        guard !neverStarted else {
            return report(.skip, "key records", "not checked: no key store yet (never started)")
        }
        do {
            var damaged = try FileKeyStore.damagedFiles(folder: config.keyStorePath)
            // The client registry too: a damaged one stops the server's start (a probe found doctor green).
            let clients = LocalClientStore.file(in: config.keyStorePath)
            do {
                _ = try LocalClientStore.stored(at: clients)
            } catch {
                damaged.append("\(clients.lastPathComponent): \(error.detail ?? error.message)")
            }
            if damaged.isEmpty {
                report(.ok, "key records", "every key, alias and client file in \(config.keyStorePath.path) reads")
            } else {
                report(
                    .fail, "key records",
                    "\(damaged.count) damaged in \(config.keyStorePath.path) (restore them from a backup): "
                        + damaged.joined(separator: "; "))
            }
        } catch {
            report(.fail, "key records", "cannot read \(config.keyStorePath.path): \(error.detail ?? error.message)")
        }
    }

    static func checkClock(_ database: PostgresDatabase, _ report: Report) async {
        guard let now = try? await database.now() else {
            return report(.fail, "database clock", "cannot read the database's time")
        }
        let skew = abs(now.timeIntervalSinceNow)
        if skew > PostgresDatabase.clockSkewLimit {
            report(
                .fail, "database clock",
                "this host and the database differ by \(Int(skew)) s: sessions break, and the key scheduler holds deletions and rotations; run NTP"
            )
        } else if skew > 2 {
            report(
                .warn, "database clock",
                "this host and the database differ by \(String(format: "%.1f", skew)) s; run NTP")
        } else {
            report(.ok, "database clock", "within \(String(format: "%.2f", skew)) s of this host")
        }
    }

    static func checkCertificate(
        _ config: KMSConfiguration, secrets: any SecretBlobStore, masterKey: MasterKey?, storeReachable: Bool = true,
        _ report: Report
    ) async {
        guard let aws = config.aws, !aws.allowPlainHTTP else { return }
        // The configured key is as secret as the master key: a review found a 0644 one went unremarked.
        if let keyFile = aws.keyFile?.standardizedFileURL.path, let keyMode = mode(keyFile),
            DurableFile.isLooseSecret(mode: keyMode, of: URL(fileURLWithPath: keyFile))
        {
            report(
                .fail, "tls key", "\(keyFile) is mode \(String(keyMode, radix: 8)); fix: chmod 600 \(keyFile)")
        }
        var pem: String?
        if aws.certificateFile == nil, !storeReachable { return report(.skip, "certificate", databaseDown) }
        if let file = aws.certificateFile {
            pem = try? String(contentsOf: file, encoding: .utf8)
        } else if let masterKey {
            pem = try? await AWSDoorCertificate.stored(secrets: secrets, masterKey: masterKey)
        }
        guard let pem, let notAfter = AWSDoorCertificate.notAfter(pem: pem) else {
            return report(.warn, "certificate", "no AWS door certificate yet (it is made at the first start)")
        }
        let days = notAfter.timeIntervalSinceNow / 86_400
        // The self-signed certificate is reissued only at a start (docs/aws.md); one's own is one's own to replace.
        let fix =
            aws.certificateFile == nil
            ? "restart kms serve to reissue it, then hand out kms tls-cert again" : "replace KMS_TLS_CERT_FILE"
        if days < 0 {
            report(.fail, "certificate", "the AWS door's certificate expired \(Timestamp.format(notAfter)); \(fix)")
        } else if days < 30 {
            report(
                .warn, "certificate",
                "the AWS door's certificate expires \(Timestamp.format(notAfter)) (\(Int(days)) days); \(fix)")
        } else {
            report(.ok, "certificate", "valid until \(Timestamp.format(notAfter))")
        }
        // A review: instances with other KMS_TLS_HOSTNAMES went on replacing each other's certificate while
        // this said ok. The next start of this configuration reissues it when it lacks one of its names.
        if aws.certificateFile == nil, let masterKey,
            let names = try? await AWSDoorCertificate.reissuesForNames(
                aws, shared: config.store == .postgres, secrets: secrets, masterKey: masterKey),
            names.reissues
        {
            report(
                .warn, "certificate names",
                "the stored certificate names \(names.stored.joined(separator: ", ")) and KMS_TLS_HOSTNAMES is \(aws.hostnames.isEmpty ? "empty" : aws.hostnames.joined(separator: ",")): the next start reissues it, a new trust anchor (restart every instance, then hand out kms tls-cert again)"
            )
        }
    }

    /// Trusted proxies set, but requests from them without X-Forwarded-For: every client looks like the proxy.
    static func checkProxy(_ config: KMSConfiguration, url: String, _ report: Report) async {
        guard !config.trustedProxies.isEmpty else { return }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = client.shutdown() }
        guard
            let response = try? await client.execute(
                HTTPClientRequest(url: url + WirePath.metrics), timeout: .seconds(5))
        else {
            return report(
                .skip, "proxy", "not checked: the server does not answer at \(url)\(WirePath.metrics) (pass --url)")
        }
        // A server that answers but refuses this host (an operator-mistakes hunt: the row said it did not answer).
        guard response.status == .ok else {
            // This server's refusal says `address_not_allowed`; a proxy in front may answer 403 for its own reasons.
            let refused = (try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) }
            let why =
                response.status == .forbidden && refused?.contains("address_not_allowed") == true
                ? "the server at \(url) refuses this host's address (KMS_WHITELIST), so its metrics cannot be read from here"
                : "the server at \(url) answered \(WirePath.metrics) with \(response.status.code)"
            return report(.skip, "proxy", "not checked: \(why)")
        }
        guard let body = try? await response.body.collect(upTo: 4 << 20) else {
            return report(.skip, "proxy", "not checked: the metrics at \(url)\(WirePath.metrics) could not be read")
        }
        func proxyCount(_ body: ByteBuffer) -> Double {
            let line = String(buffer: body).split(separator: "\n").first {
                $0.hasPrefix("kms_proxy_requests_without_forwarded_for_total")
            }
            let value = line.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            // What a server of another kind may print (inf, 1e300) is not a count: no trap in Int (a review).
            return value.isFinite && value >= 0 && value < 1e15 ? value.rounded() : 0
        }
        // The server does not count `/metrics` requests here (doctor's own reads made the warning every run).
        let count = Int(proxyCount(body))
        let defaults = config.trustedProxies.map(\.description) == KMSConfiguration.defaultTrustedProxies
        if count > 0, defaults {
            // Local clients (this CLI among them) look exactly like a reverse proxy on this host that sets no
            // header, and that proxy would open the allowlist to everyone: a warning, worded for both cases.
            report(
                .warn, "proxy",
                "\(count) requests came from loopback without X-Forwarded-For: expected of local clients (kms on this host) under the default KMS_TRUSTED_PROXIES, but if a reverse proxy runs on this host every client it forwards looks local; make it set the header, or set KMS_TRUSTED_PROXIES= (empty) when no proxy runs here (docs/deploy.md)"
            )
        } else if count > 0 {
            report(
                .warn, "proxy",
                "\(count) requests came from a trusted proxy address without X-Forwarded-For, so that address was taken as the client's: if a proxy runs there, make it set the header (docs/deploy.md); if they were local clients, set KMS_TRUSTED_PROXIES to the proxy's address only (or empty)"
            )
        } else {
            report(.ok, "proxy", "every request from a trusted proxy carried X-Forwarded-For")
        }
    }
}
