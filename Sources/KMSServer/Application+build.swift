import Foundation
public import Hummingbird
public import KMSCore
import KMSPostgres
import KMSProtocol
public import Logging
import ServiceLifecycle

/// What the application is built from besides its configuration: the parts
/// tests replace (clock, stores, a pre-made identity key).
public struct AppDependencies: Sendable {
    public var clock: any KMSClock = SystemClock()
    public var sessionStore: (any SessionStore)?
    /// The key store; when nil, the file store at `KEY_STORE_PATH`.
    public var keyStore: (any KeyStore)?
    /// A ready identity key; when nil it is loaded from (or created in) the key store.
    public var identity: IdentityKey?
    public var logger = Logger(label: "kms")
    /// Where audit lines go; when nil, the file at `KMS_AUDIT_LOG`.
    public var auditWriter: (any AuditFileWriter)?
    /// Told the listening port once the server runs (benchmarks use port 0).
    public var onServerRunning: (@Sendable (Int) -> Void)?
    /// The client registry's store; when nil, `clients.json` in the key store
    /// folder (file store) or the database's table.
    public var clientStore: (any ClientStore)?
    /// Where RSA unwraps run; when nil, one thread per core at nice 10.
    public var rsaQueue: RSAWorkQueue?
    /// How often expired sessions are swept.
    public var janitorInterval: Duration = .seconds(30)
    /// How often the count of log lines left out by thinning is said (`LeftOutLogLines`).
    public var leftOutLogInterval: Duration = .seconds(60)
    /// Overrides `KMS_SCHEDULER_INTERVAL_MS` (tests).
    public var schedulerInterval: Duration?
    /// The clock the key scheduler checks this host's against before it
    /// deletes or rotates on a date, and the changes that write a date before
    /// they do (`KeyRing.reference`, a `ReferenceClock`); when nil,
    /// the database's on PostgreSQL and, on the file store, the host's clock at
    /// start-up advanced by the monotonic clock (`KeyScheduler.countedSinceStart`; tests set one).
    public var referenceClock: (@Sendable () async throws(KMSError) -> Date)?
    /// Called with the AWS door's port once it listens (tests bind port 0).
    public var onAWSServerRunning: (@Sendable (Int) -> Void)?

    public init() {}
}

/// Builds the whole server from one configuration value.
///
/// `kms serve` calls it with the environment's configuration; tests call it
/// with in-memory stores, a manual clock and a shared identity key.
public func buildApplication(
    _ config: KMSConfiguration, dependencies: AppDependencies = AppDependencies()
) async throws -> some ApplicationProtocol {
    let logger = dependencies.logger
    var dependencies = dependencies
    if config.testClockOffsetMs != 0 {
        dependencies.clock = OffsetClock(base: dependencies.clock, offsetMs: config.testClockOffsetMs)
        logger.warning(
            "KMS_TEST_CLOCK_OFFSET_MS moves this server's clock; key states, schedules, sessions and audit times follow it",
            metadata: ["offsetMs": "\(config.testClockOffsetMs)"])
    }
    // The folders of the store and of the master key refuse, not warn, when someone else could have put
    // files there: a master key they chose wraps everything the server then writes. Before anything is
    // written there (a lock file, a sweep of temporaries: the diff review).
    if let refusal = untrustedFolders(config) { throw StartupFailure(description: refusal, isConfiguration: true) }
    for warning in untrustedAncestors(config) { logger.warning("\(warning)") }
    // One writer per audit log, before anything here touches a file another server may be using.
    let writerLock: AuditWriterLock?
    do {
        writerLock = dependencies.auditWriter == nil ? try AuditWriterLock.acquire(forLog: config.auditLog) : nil
    } catch {
        throw StartupFailure(description: "KMS_AUDIT_LOG: \(error.description)")
    }
    // The store's own lock too: a restore or `clients add --local` naming another audit log is refused.
    var storeLock: AuditWriterLock?
    if config.store == .file, dependencies.keyStore == nil {
        do {
            storeLock = try AuditWriterLock.acquire(forStore: config.keyStorePath)
        } catch {
            throw StartupFailure(description: "KEY_STORE_PATH: \(error.description)")
        }
    }
    if storeLock != nil, let refusal = FileBackupStore.interruptedRestoreRefusal(in: config.keyStorePath) {
        // A first start here would begin an empty KMS (or a half-restored one) without a word.
        throw StartupFailure(description: "KEY_STORE_PATH: \(refusal)")
    }
    // The key store's folder is the file store's alone: on PostgreSQL an empty ./data/keys made here was a
    // question for whoever found it (an operator's review; kms doctor reported it as a store).
    var folders = [config.auditLog.deletingLastPathComponent(), config.adminKeyFile.deletingLastPathComponent()]
    if config.store == .file {
        do {
            try DurableFile.prepareFolder(config.keyStorePath)
        } catch {
            throw StartupFailure(description: "KEY_STORE_PATH: \(error.description)")
        }
        DurableFile.removeStaleTemporaries(in: config.keyStorePath)
        folders.append(config.keyStorePath)
    }
    if config.masterKeyBase64 == nil { folders.append(config.masterKeyFile.deletingLastPathComponent()) }
    for folder in Set(folders.map(\.standardizedFileURL)) {
        if let warning = DurableFile.looseness(of: folder) { logger.warning("\(warning)") }
    }
    warnAboutLooseStore(config, logger: logger)
    if let warning = config.ignoredCredentialWarning { logger.warning("\(warning)") }
    for warning in config.settingWarnings { logger.warning("\(warning)") }
    let (masterKey, createdMasterKey) = try MasterKeyLoader.loadNoting(
        base64: config.masterKeyBase64, file: config.masterKeyFile, logger: logger)
    // Announced at once, as before: a start that fails later (a database lost mid-start) would otherwise never
    // announce a good key (a review); a useless one is named as such by the refusal below.
    if createdMasterKey {
        MasterKeyLoader.noteCreated(config.masterKeyFile, logger: logger)
        let relative = config.relativePathSettings
        if !relative.isEmpty {
            // A notice, not a warning: the defaults are relative, and a newcomer's first start is this one.
            logger.notice(
                "\(relative.joined(separator: ", ")) are relative paths, read from the folder kms serve was started in: start it from that folder each time, or give absolute paths (a start from another folder does not find these files, and on the file store makes another new store)",
                metadata: [
                    "folder": "\(FileManager.default.currentDirectoryPath)",
                    "keyStorePath": "\(config.keyStorePath.path)",
                ])
        }
    }
    let stores = try await openStores(config, dependencies: dependencies, masterKey: masterKey, storeLock: storeLock)
    if createdMasterKey {
        try await refuseNewMasterKeyForOldStore(config, masterKey: masterKey, secrets: stores.secrets)
    }
    // Whether this store was started before (a first start enrols a client, after its audit key and log
    // exist): a start that then finds no audit key and no log says so, since the two going together leave
    // no other trace (`openAudit`).
    // Read with `try`: a failed read is no answer (taken for "never started", it dropped the warnings below).
    let startedBefore: Bool
    do {
        startedBefore = try await !stores.clients.list(after: nil, limit: 1).isEmpty
    } catch {
        throw StartupFailure("the client registry", error)
    }
    // A store without an identity key but with an audit key: the master key must open the audit key before
    // a new identity is made and stored under it (an operator-mistakes review: a start with the wrong key
    // made one, then failed on the audit key, and every later start with the right key was refused by it).
    // Read with `try`: a read that fails is no answer, and taking it for "none" would make a new identity
    // under a master key not yet checked (a review).
    let hadAuditKey: Bool
    var hadIdentity = dependencies.identity != nil
    do {
        if !hadIdentity { hadIdentity = try await stores.secrets.blob(named: IdentityKeyLoader.blobName) != nil }
        hadAuditKey = try await stores.secrets.blob(named: AuditFiles.keyBlob) != nil
    } catch {
        throw StartupFailure("the store's secrets", error)
    }
    if !hadIdentity, hadAuditKey {
        let opens: Bool
        do {
            _ = try await AuditFiles.existingKey(store: stores.secrets, masterKey: masterKey)
            opens = true
        } catch {
            // A storage failure is thrown as it is; only a key that does not open is the master key's fault.
            guard error.secretDidNotOpen else { throw error }
            opens = false
        }
        if !opens {
            // A key file made by this start is the one that does not open: said as such, and named for removal.
            if createdMasterKey { throw newMasterKeyRefusal(config) }
            throw StartupFailure(
                description:
                    "the master key does not open this store's audit key: it is not this store's master key (KMS_MASTER_KEY, KMS_MASTER_KEY_FILE), or the audit key is damaged; nothing was written",
                isConfiguration: true)
        }
    }
    let identity: IdentityKey
    if let provided = dependencies.identity {
        identity = provided
    } else {
        let loaded: Result<(key: IdentityKey, created: Bool), any Error>
        do {
            loaded = .success(
                try await IdentityKeyLoader.loadOrCreate(store: stores.secrets, masterKey: masterKey, logger: logger))
        } catch {
            loaded = .failure(error)
        }
        if case .failure = loaded, createdMasterKey {
            // Another instance, given another key file, may have made the store's identity a moment ago (a
            // review): said as such when the identity now there does not open under the key made here.
            // Only that refusal replaces the start's own error: a storage failure of this second read does not.
            do {
                try await refuseNewMasterKeyForOldStore(config, masterKey: masterKey, secrets: stores.secrets)
            } catch let refusal as StartupFailure {
                throw refusal
            } catch {}
        }
        let (key, created) = try loaded.get()
        identity = key
        // A store with clients and an audit key was started before (a client enrolled offline before the first
        // start is not one): a key made now replaces one that was lost.
        if created, startedBefore, hadAuditKey {
            // Clients pinned the old key (known_servers, trust on first use): each refuses this server until told
            // (an operator-mistakes review: only the generation's notice said it).
            logger.warning(
                "the store was started before, but its server identity key was gone, so this start made a new one: every client that pinned the old one refuses this server (fingerprint mismatch) until told the new fingerprint; if the old key is in a backup, stop the server and restore the store instead",
                metadata: ["fingerprint": "\(identity.fingerprint)"])
        }
    }
    logger.notice("server identity key", metadata: ["fingerprint": "\(identity.fingerprint)"])

    let lifecycle = config.keyLifecycle
    var keys = KeyRing(store: stores.keys, masterKey: masterKey, lifecycle: lifecycle, clock: dependencies.clock)
    // One reference for the scheduler's holds and the changes that write a date (its file-store form keeps
    // an anchor that both must share).
    keys.reference = ReferenceClock(
        name: dependencies.referenceClock != nil
            ? "the reference clock" : stores.database == nil ? KeyScheduler.countedName : KeyScheduler.databaseName,
        isCounted: dependencies.referenceClock == nil && stores.database == nil,
        now: dependencies.referenceClock ?? databaseClock(stores.database) ?? KeyScheduler.countedSinceStart())
    // A store already past the key limit (made before it, or restored) refuses every generate: said at start.
    if let count = try? await stores.keys.count(), count >= config.maxKeys {
        logger.warning(
            "the key store holds as many keys as KMS_MAX_KEYS allows, or more: every generate is refused (409 limit_reached) until keys are deleted or the limit raised",
            metadata: ["keys": "\(count)", "maxKeys": "\(config.maxKeys)"])
    }
    let audit = try await openAudit(
        config, dependencies: dependencies, masterKey: masterKey, secrets: stores.secrets, writerLock: writerLock,
        startedBefore: startedBefore)
    let sessionStore = stores.sessions
    let clients = ClientRegistry(store: stores.clients, masterKey: masterKey, clock: dependencies.clock)
    // Durable before and after, as a client change is: a crash, a power loss or a full disk must not leave a
    // client with every permission enrolled without a trace (identity-v1 section 9 tells operators to watch
    // client.* entries for exactly that; a review found the entry best effort, after the change).
    let keyFileField = ("keyFile", config.adminKeyFile.path)
    func bootstrapEntry(_ event: AuditEvent) async throws {
        try await audit.log.record(event, durable: true, wait: AuditLog.startupWait)
    }
    var intended = false
    let bootstrapped: AdminBootstrap.Enrolled?
    do {
        bootstrapped = try await AdminBootstrap.run(
            registry: clients, keyFile: config.adminKeyFile, logger: logger,
            intent: {
                try await bootstrapEntry(AuditEvent("client.bootstrap", outcome: "intent", [keyFileField]))
                intended = true
            },
            lost: {
                await audit.log.recordBestEffort(
                    AuditEvent("client.bootstrap", outcome: "failure", [keyFileField, ("changed", "false")]))
            })
    } catch {
        // Its intent is not left without an outcome (a review): the start stops here with this error.
        // A statement given up on may still have enrolled it: the code says what failed, the registry the rest.
        if intended {
            // A refused key file is the operator's to fix, not the server's fault (the diff review).
            let code =
                (error as? KMSError)?.code.rawValue ?? (error is StartupFailure ? "startup_refused" : "internal_error")
            // Durable, so signed: the process exits right after, before any timed checkpoint (a review found
            // it left unsigned, read by the next `kms audit verify` as a crash's tail).
            do {
                try await bootstrapEntry(
                    AuditEvent("client.bootstrap", outcome: "failure", [keyFileField, ("code", code)]))
            } catch {
                logger.error("could not write an audit entry", metadata: ["event": "client.bootstrap"])
            }
        }
        throw error
    }
    if let enrolled = bootstrapped {
        let admin = enrolled.record
        try await bootstrapEntry(
            AuditEvent(
                "client.bootstrap",
                [
                    ("targetClientId", admin.clientId), ("targetName", admin.name),
                    ("fingerprint", admin.fingerprint), keyFileField,
                    ("keySource", enrolled.keySource.rawValue),
                ]))
    }
    // Copies of the admin key a crash left beside it (its bootstrap sweeps them only when it runs): once the
    // file exists, no start is still writing one.
    if FileManager.default.fileExists(atPath: config.adminKeyFile.path) {
        DurableFile.removeStaleTemporaries(of: config.adminKeyFile)
    }
    let beyond = ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies)
        .proxiesBeyondAllowlist
    if !beyond.isEmpty {
        logger.warning(
            "KMS_TRUSTED_PROXIES holds ranges KMS_WHITELIST does not: anything at those addresses is let in by naming an allowlisted address in X-Forwarded-For; list only your proxy's own address there (empty trusts none)",
            metadata: ["beyondAllowlist": "\(beyond.map(\.description).joined(separator: ","))"])
    }
    if let warning = ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies)
        .proxyRangesWarning
    {
        logger.warning("\(warning)")
    }
    for warning in config.limitWarnings { logger.warning("\(warning)") }
    if let warning = config.unreadSettingsWarning { logger.warning("\(warning)") }
    if config.clientAuth == .off {
        logger.warning(
            "KMS_CLIENT_AUTH=off: every allowlisted host that completes a key exchange can use every key (protocol-v1); enrol clients and remove it"
        )
        // Instances that share a store and differ in this setting: the enrolled clients' grants hold on the
        // others, not here (a review made an admin through such an instance, which then worked on all).
        // Besides the bootstrap admin, which has every permission anyway.
        // Read for a warning only: a record that cannot be read stops nothing here.
        let enrolled = ((try? await clients.list(after: nil, limit: 1_000)) ?? []).filter {
            $0.revokedAt == nil && $0.name != ClientRegistry.bootstrapName
        }.count
        if enrolled > 0 {
            logger.warning(
                "KMS_CLIENT_AUTH=off on a store with enrolled clients: this instance ignores their grants, whichever instance they enrolled on; give every instance the same setting (docs/identity.md)",
                metadata: ["activeClients": "\(enrolled)"])
        }
    }
    let sessions = SessionManager(
        store: sessionStore, identity: identity, policy: config.sessions, clock: dependencies.clock,
        clients: clients, clientAuthRequired: config.clientAuth == .required,
        rsa: dependencies.rsaQueue ?? RSAWorkQueue())
    let metrics = RequestMetrics()
    var channel = SealedChannel(
        sessions: sessions, maxBodyBytes: config.maxBodyBytes, resolveKey: keys.resolveNames,
        resolveKeyFresh: keys.resolveNamesFresh)
    let clock = dependencies.clock
    channel.noteDenied = { permission, error, target, call in
        let named = error.detail ?? ""
        audit.permissionDenied(
            Auditor.who(call),
            client: call.opened.client?.clientId ?? AuditEvent.sessionHash(call.opened.sessionId),
            // The name as asked only in a form no secret has (`Auditor.shownName`; a review: a secret pasted as
            // a key name was recorded whole). An empty one (no key named) stays empty.
            permission: permission, key: named.isEmpty ? "" : Auditor.shownName(named),
            target: target, keyId: error.deniedKeyId, at: clock.now())
    }
    channel.noteMissingKey = { permission, key, call in
        await audit.cryptoKeyNotFound(permission, who: Auditor.who(call), key: Auditor.asAsked(key))
    }
    let routes = makeRoutes(
        sessions: sessions, channel: channel, keys: keys, metrics: metrics, audit: audit,
        maxBodyBytes: config.maxBodyBytes, keyExchangeRate: config.keyExchangeRate)
    let edge = EdgeResponder(
        routes: routes,
        resolver: ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies),
        maxBodyBytes: config.maxBodyBytes, securityHeaders: SecurityHeaders(hsts: config.environment == .production),
        metrics: metrics, logger: logger, audit: audit)
    let notifier = SystemdNotifier()
    let readiness = ReadinessGate(listeners: config.aws == nil ? 1 : 2, notifier: notifier, logger: logger)
    let onRunning = dependencies.onServerRunning
    var app = Application(
        responder: edge,
        server: .http1(
            configuration: .guarded(
                config, counter: ConnectionGuard.Counter(config),
                malformed: EdgeResponder.malformedAnswer(edge.securityHeaders), metrics: metrics, door: .native)),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
        onServerRunning: { channel in
            onRunning?(channel.localAddress?.port ?? 0)
            readiness.listening()
        },
        logger: logger)
    app.addServices(
        SessionJanitor(
            store: sessionStore, clock: dependencies.clock, interval: dependencies.janitorInterval, logger: logger,
            audit: audit),
        AuditFlusher(log: audit.log, database: stores.database),
        LeftOutLogLines(
            kinds: [
                .init(name: "native refused addresses", sampler: edge.refusalLog, level: .warning),
                .init(name: "native plain 4xx answers", sampler: edge.plainRefusalLog, level: .info),
            ] + edge.logThinning.kinds(door: "native"),
            interval: dependencies.leftOutLogInterval, logger: logger),
        KeyScheduler(
            keys: keys, audit: audit,
            interval: dependencies.schedulerInterval ?? .milliseconds(config.schedulerIntervalMs),
            logger: logger))
    if let keyStore = stores.keys as? PostgresKeyStore { app.addServices(KeyChangeListener(store: keyStore)) }
    if let aws = config.aws {
        app.addServices(
            try await makeAWSDoor(
                aws, config: config, dependencies: dependencies, keys: keys, audit: audit, clients: clients,
                secrets: stores.secrets, masterKey: masterKey, readiness: readiness, metrics: metrics))
    }
    return app
}

/// The database's clock as the key scheduler's reference (nil on the file store).
private func databaseClock(_ database: PostgresDatabase?) -> (@Sendable () async throws(KMSError) -> Date)? {
    guard let database else { return nil }
    return { () async throws(KMSError) -> Date in try await database.now() }
}

/// Runs `app` until SIGTERM or SIGINT (`kms serve`), and SIGHUP unless it was ignored at start (`nohup`
/// keeps it ignored): a closed terminal, or a `kill -HUP` meant as a reload, ended the server at once,
/// without its final audit checkpoint (a review).
///
/// The drain is bounded by `maximumDrain` (20 s, below the unit's `TimeoutStopSec=45s`): a slow upload
/// could hold it for a body timeout and an idle timeout (30 s each by default, up to an hour), and systemd's
/// SIGKILL then came before the audit log was signed and closed. Past it the group is cancelled, and
/// `AuditFlusher` still closes the log (`ServeGroup`).
public func runUntilSignalled(
    _ app: some ApplicationProtocol, logger: Logger, onHangup: Bool, maximumDrain: Duration = .seconds(20)
) async throws {
    try await ServeGroup(
        app, signals: onHangup ? [.sigterm, .sigint, .sighup] : [.sigterm, .sigint], maximumDrain: maximumDrain,
        notifier: SystemdNotifier(), logger: logger
    ).run()
}

/// Every route the server answers, each declared once by its controller, in
/// the table that dispatches them and that the documents are rendered from.
func makeRoutes(
    sessions: SessionManager, channel: SealedChannel, keys: KeyRing, metrics: RequestMetrics, audit: Auditor,
    maxBodyBytes: Int, keyExchangeRate: Int = 50
) -> RouteTable {
    var routes = RouteBuilder(channel: channel)
    HealthController(metrics: metrics, auditLog: audit.log).register(on: &routes)
    SessionController(
        sessions: sessions, maxBodyBytes: maxBodyBytes, audit: audit,
        keyExchanges: KeyExchangeLimiter(perSecond: keyExchangeRate)
    ).register(on: &routes)
    KeysController(keys: keys, audit: audit).register(on: &routes)
    KeyLifecycleController(keys: keys, audit: audit).register(on: &routes)
    AliasesController(keys: keys, audit: audit).register(on: &routes)
    ClientsController(clients: sessions.clients, sessions: sessions, audit: audit).register(on: &routes)
    CryptoController(keys: keys, audit: audit).register(on: &routes)
    let docs = DocsController()
    docs.register(on: &routes)
    docs.publish(routes.table)
    return routes.table
}

/// Files and folders inside the store, and the admin key, that others may read (a review: start-up
/// warned about loose top folders and the master key, not about a key file or secret blob of mode 0644,
/// which only `kms doctor` failed). One line for them all, naming the first, from doctor's own walk.
func warnAboutLooseStore(_ config: KMSConfiguration, logger: Logger) {
    var loose = DurableFile.entries(under: config.keyStorePath).filter { $0.mode & 0o077 != 0 }.map(\.path)
    if let mode = DurableFile.mode(of: config.adminKeyFile), mode & 0o077 != 0 {
        loose.append(config.adminKeyFile.path)
    }
    guard let first = loose.first else { return }
    logger.warning(
        "files or folders of the key store are open to other users of this machine: chmod go-rwx them (kms doctor lists them)",
        metadata: ["files": "\(loose.count)", "first": "\(first)"])
}

/// A master key made at this start beside a store whose identity key it cannot open stops start-up,
/// naming the file as the one to remove: the store was made under another master key, which the file
/// no longer holds (moved, deleted, another `KMS_MASTER_KEY_FILE`), and the new key, left unexplained,
/// looked like the one to back up (a review). Nothing is moved or removed: two versions that set the
/// file aside could, racing another instance or an operator putting the right key back, take a key in
/// use (reviews of them); the operator does it knowing which file is which.
func refuseNewMasterKeyForOldStore(
    _ config: KMSConfiguration, masterKey: MasterKey, secrets: any SecretBlobStore
) async throws {
    // Read once: a storage failure is thrown as it is and decides nothing; the bytes read decide.
    guard let wrapped = try await secrets.blob(named: IdentityKeyLoader.blobName),
        !IdentityKeyLoader.opens(wrapped, under: masterKey)
    else { return }
    throw newMasterKeyRefusal(config)
}

private func newMasterKeyRefusal(_ config: KMSConfiguration) -> StartupFailure {
    let file = config.masterKeyFile.path
    return StartupFailure(
        description:
            "no master key was at \(file) (KMS_MASTER_KEY_FILE), so this start made one there, but the store holds secrets wrapped by another (or its identity blob is damaged): the new key opens none of them. Remove \(file), which holds only that new key, and put the store's master key back there (from its backup), or give it as KMS_MASTER_KEY",
        // A restart cannot fix it: exit 78, which the unit does not restart (an operator's review: exit 1, so
        // systemd restarted it every 2 s).
        isConfiguration: true)
}

/// Opens the audit log (resuming its chain), loads its key, and records the
/// effective configuration. A log that cannot be written stops start-up.
func openAudit(
    _ config: KMSConfiguration, dependencies: AppDependencies, masterKey: MasterKey, secrets: any SecretBlobStore,
    writerLock: AuditWriterLock?, startedBefore: Bool = false
) async throws -> Auditor {
    let logger = dependencies.logger
    let timeout = Duration.milliseconds(config.auditTimeoutMs)
    do {
        // A store whose audit key is older than its (empty or missing) log: the log it wrote was moved,
        // deleted or emptied while the server was stopped, or, on PostgreSQL, this is a new instance.
        // The new chain says so in its first entry, since nothing else would (a probe wiped a stopped
        // server's log, and after the next start verify said OK from seq 1).
        let (key, keyExisted) = try await AuditFiles.loadOrCreateKeyNotingAge(
            store: secrets, masterKey: masterKey, log: dependencies.auditWriter == nil ? config.auditLog : nil)
        let log: AuditLog
        if let injected = dependencies.auditWriter {
            log = try AuditLog(
                writer: injected, key: key, after: 0, prev: AuditChain.genesis, clock: dependencies.clock,
                maxBytes: config.auditMaxBytes, timeout: timeout, logger: logger)
        } else {
            log = try await AuditLog.open(
                at: config.auditLog, key: key, clock: dependencies.clock, maxBytes: config.auditMaxBytes,
                timeout: timeout, writerLock: writerLock,
                newLogReason: keyExisted
                    ? config.newLogReason : startedBefore ? KMSConfiguration.missingAuditKeyReason : nil,
                newLogLevel: keyExisted ? config.newLogLevel : .warning, logger: logger)
        }
        var events: [AuditEvent] = []
        // The public key that verifies this log, in the server's own log (journald, another place than the
        // audit log and the store) and in the start entry: a store and log both replaced while the server
        // was stopped start a new chain under a new key that verifies from seq 1, and this line is what
        // shows the key changed (a review). `kms audit verify --public-key` takes it.
        let publicKey = Base64.encode(key.publicKey.rawRepresentation)
        logger.notice("audit log signing key", metadata: ["auditPublicKey": "\(publicKey)"])
        events.append(
            AuditEvent(
                "server.start",
                (config.loggable.map { ($0.key, "\($0.value)") } + [("auditPublicKey", publicKey)]).sorted {
                    $0.0 < $1.0
                },
                capped: false))
        try await log.record(events, durable: true, wait: max(timeout, AuditLog.startupWait))
        return Auditor(log: log)
    } catch let error as KMSError {
        throw StartupFailure("KMS_AUDIT_LOG", error)
    } catch {
        throw StartupFailure(description: "KMS_AUDIT_LOG: \(error)")
    }
}

/// The stores `KMS_STORE` selects (tests may inject their own).
struct Stores {
    let keys: any KeyStore
    let sessions: any SessionStore
    let clients: any ClientStore
    let secrets: any SecretBlobStore
    let database: PostgresDatabase?
}

/// `file`: the key store folder and in-memory sessions (one instance).
/// `postgres`: one database shared by every instance for keys, sessions and
/// the server's own secrets; each instance keeps its own audit log file.
func openStores(
    _ config: KMSConfiguration, dependencies: AppDependencies, masterKey: MasterKey, storeLock: AuditWriterLock? = nil
) async throws -> Stores {
    let lifecycle = config.keyLifecycle
    switch config.store {
    case .file:
        let keys: any KeyStore
        if let provided = dependencies.keyStore {
            keys = provided
        } else {
            do {
                keys = try FileKeyStore(
                    folder: config.keyStorePath, lifecycle: lifecycle, clock: dependencies.clock, holding: storeLock)
            } catch {
                throw StartupFailure("KEY_STORE_PATH", error)
            }
        }
        let clients: any ClientStore
        if let provided = dependencies.clientStore {
            clients = provided
        } else {
            do {
                clients = try LocalClientStore(folder: config.keyStorePath)
            } catch {
                throw StartupFailure("KEY_STORE_PATH", error)
            }
        }
        return Stores(
            keys: keys, sessions: dependencies.sessionStore ?? InMemorySessionStore(), clients: clients,
            secrets: FileSecretBlobStore(folder: config.keyStorePath), database: nil)
    case .postgres:
        let database: PostgresDatabase
        do {
            database = try await PostgresDatabase(
                url: config.databaseURL ?? "", prefix: config.databasePrefix, logger: dependencies.logger,
                callTimeout: config.databaseCallTimeout)
        } catch let failure as StartupFailure {
            throw failure  // as it is: a configuration failure keeps its exit status 78
        } catch {
            throw StartupFailure(description: "\(error)")
        }
        return Stores(
            keys: dependencies.keyStore
                ?? PostgresKeyStore(database: database, lifecycle: lifecycle, clock: dependencies.clock),
            sessions: dependencies.sessionStore ?? PostgresSessionStore(database: database, masterKey: masterKey),
            clients: dependencies.clientStore ?? PostgresClientStore(database: database),
            secrets: PostgresSecretBlobStore(database: database), database: database)
    }
}
