import Foundation
import KMSCore
import KMSProtocol
public import Logging
import NIOCore
public import PostgresNIO
import Synchronization

/// The shared PostgreSQL database of several `kms serve` instances: the pool,
/// the schema (versioned migrations applied at start-up) and the stores.
///
/// Table names carry a prefix (`kms_` by default) so that tests can give each
/// run its own tables in one database.
public final class PostgresDatabase: Sendable {
    public let client: PostgresClient
    public let prefix: String
    let logger: Logger
    private let runTask: Task<Void, Never>
    /// Where single connections (the key-change listener) go: the pool's target.
    private let target: PostgresURL
    /// How long a request's database call may take before it is answered `503`
    /// (`KMS_DATABASE_TIMEOUT_MS`; the statement and lock timeouts are set below it).
    public let callTimeout: Duration

    /// Connects (checking the URL, the credentials and the permissions with
    /// one probe connection, so a mistake is reported at once and clearly),
    /// starts the pool (at most `maximumConnections`) and applies pending migrations.
    /// `migrate: false` (`kms backup`, `kms doctor`): never change the schema;
    /// a schema other than this binary's is refused instead.
    public init(
        url: String, prefix: String = "kms_", logger: Logger, maximumConnections: Int = 16, migrate: Bool = true,
        callTimeout: Duration = PostgresDatabase.defaultCallTimeout
    ) async throws {
        try Self.checkPrefix(prefix)
        let target = try PostgresURL(url)
        self.target = target
        self.prefix = prefix
        self.logger = logger
        self.callTimeout = callTimeout
        let startupTimeout = max(callTimeout, Self.startupTimeoutFloor)
        try await Self.probe(target, logger: logger, timeout: startupTimeout)
        var configuration =
            if let socket = target.socketPath {
                PostgresClient.Configuration(
                    unixSocketPath: socket, username: target.username, password: target.password,
                    database: target.database)
            } else {
                PostgresClient.Configuration(
                    host: target.host, port: target.port, username: target.username, password: target.password,
                    database: target.database, tls: try target.clientTLS())
            }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = callTimeout / 2
        // A stuck statement or a row lock held by a stalled instance fails instead of hanging, inside the
        // call's deadline (5 s and 3 s with the default 6 s): the caller gets the database's reason.
        // A transaction left idle in the middle (this instance frozen, its VM paused, its network cut
        // between two statements) is ended by the database after `idleTransactionLimit`, which frees its
        // locks: the advisory locks that bound pending sessions, live sessions and the client registry are
        // taken by every instance, and a review's frozen instance held them, stopping key exchanges and
        // revocations everywhere until TCP gave up. The limit is far above any pause a loaded host makes
        // between two statements of a live transaction: in our tests a statement sent on a connection the
        // database ended so did not return (docs/postgres.md).
        let timeoutMs = Self.milliseconds(callTimeout)
        let idleMs = Self.milliseconds(Self.idleTransactionLimit)
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(max(timeoutMs - 1_000, timeoutMs * 3 / 4))"), ("lock_timeout", "\(timeoutMs / 2)"),
            ("idle_in_transaction_session_timeout", "\(idleMs)"),
            // Every bound (sessions, pending sessions, clients, the last admin) is "take an advisory lock,
            // then count", which needs each statement's own snapshot: READ COMMITTED, whatever the database's
            // default says (a review: under `default_transaction_isolation = 'repeatable read'` the count
            // was taken before the lock was granted, and two instances could revoke the last two admins).
            ("default_transaction_isolation", "read committed"),
        ]
        var background = logger
        background.logLevel = .error  // the probe above already reported connection problems clearly
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        runTask = Task { await client.run() }
        do {
            // A database that answers the probe and then goes silent (a paused VM, a dropped flow) must
            // fail start-up, not hang it: PostgresNIO waits for an answer for ever. A migration may wait
            // `Migrations.lockWaitSeconds` for another instance's, and its statements as long again: twice that
            // on top (a deadline that cut off a slow but healthy migration would make every restart repeat it).
            let migrations = Migrations(database: self)
            let deadline = migrate ? .seconds(2 * Migrations.lockWaitSeconds) + startupTimeout : startupTimeout
            try await Self.withStartupDeadline("prepare the schema", timeout: deadline) {
                try await migrate ? migrations.apply() : migrations.requireCurrent()
            }
        } catch let failure as StartupFailure {
            runTask.cancel()
            throw failure
        } catch {
            runTask.cancel()
            throw StartupFailure(description: "KMS_DATABASE_URL: cannot prepare the schema: \(Self.describe(error))")
        }
    }

    /// Another set of tables (another prefix) on the same pool: tests give each
    /// store under test its own empty tables this way.
    public init(sharing other: PostgresDatabase, prefix: String) async throws {
        try Self.checkPrefix(prefix)
        client = other.client
        target = other.target
        self.prefix = prefix
        logger = other.logger
        callTimeout = other.callTimeout
        runTask = Task {}
        try await Migrations(database: self).apply()
    }

    /// The table prefix's grammar, one rule for `KMS_DATABASE_PREFIX` and for every pool: up to 32 of
    /// [a-z0-9_], starting with a letter.
    public static let prefixRule = "up to 32 of [a-z0-9_], starting with a letter"

    /// Whether `prefix` follows `prefixRule`.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        guard prefix.utf8.count <= 32, let first = prefix.utf8.first,
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first)
        else { return false }
        return prefix.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }

    /// The prefix goes into SQL as it is (table names, and a string in the notify trigger): checked here
    /// as `KMS_DATABASE_PREFIX` is, so that no caller that skips the configuration can inject (a review).
    static func checkPrefix(_ prefix: String) throws {
        guard isValidPrefix(prefix) else {
            throw StartupFailure(description: "the table prefix must be \(prefixRule)", isConfiguration: true)
        }
    }

    /// One connection of its own, outside the pool (for `LISTEN`, which needs a connection that stays).
    func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            configuration: try Self.connectionConfiguration(target), id: 1, logger: Self.quiet(logger))
    }

    /// `connect()` that gives up after `timeout` (the listener's deadline, `KMS_DATABASE_TIMEOUT_MS`,
    /// rather than PostgresNIO's 10 s for a single connection's TCP connect and start-up). A
    /// connection that arrives after the deadline is closed, not kept.
    func connect(within timeout: Duration) async throws(KMSError) -> PostgresConnection {
        let attempt = Task { try await connect() }
        do {
            return try await withDeadline("connect", timeout: timeout) { try await attempt.value }
        } catch {
            Task { try? await attempt.value.close() }
            throw error
        }
    }

    /// `logger` at `.notice` or above: at `trace`, PostgresNIO logs the authentication exchange (the
    /// SCRAM salt, iterations and proof, enough to guess the password offline), as a review found.
    static func quiet(_ logger: Logger) -> Logger {
        var quiet = logger
        if quiet.logLevel < .notice { quiet.logLevel = .notice }
        return quiet
    }

    /// A single connection's configuration for `target` (the probe's and the listener's).
    private static func connectionConfiguration(_ target: PostgresURL) throws -> PostgresConnection.Configuration {
        if let socket = target.socketPath {
            return PostgresConnection.Configuration(
                unixSocketPath: socket, username: target.username, password: target.password, database: target.database)
        }
        return PostgresConnection.Configuration(
            host: target.host, port: target.port, username: target.username, password: target.password,
            database: target.database, tls: try target.connectionTLS())
    }

    /// How far this host's clock may be from the database's before `kms
    /// doctor` fails and the key scheduler holds what it does on a date
    /// (deletions, rotations): an instance whose clock runs ahead would delete
    /// a key early, for every instance and irreversibly.
    public static let clockSkewLimit: TimeInterval = ReferenceClock.skewLimit

    /// The database's clock (`kms doctor` and the key scheduler compare it with this host's).
    public func now() async throws(KMSError) -> Date {
        let (client, logger) = (client, logger)
        return try await withDeadline("read the clock") {
            for try await date in try await client.query("SELECT now()", logger: logger).decode(Date.self) {
                return date
            }
            throw KMSError.internal("no answer to SELECT now()")
        }
    }

    /// Stops the pool (at shutdown, after the server drained).
    public func shutdown() {
        runTask.cancel()
    }

    func table(_ name: String) -> String { prefix + name }

    /// The `LISTEN` channel of key and alias changes (migration 4's trigger).
    var keyChannel: String { prefix + "keys" }

    /// What an advisory lock serialises, each in its own namespace.
    enum LockPurpose: Int32 {
        case migrations = 7311
        case pendingBound = 7312
        case sessionBound = 7313
        /// Client registry changes: uniqueness, limits and the last-admin rule.
        case clientRegistry = 7314
        /// Held shared, for its whole life, by every running `kms serve` on
        /// its key-change listener's connection; `kms restore` takes it
        /// exclusively, so it sees a server anywhere on the deployment (a
        /// review restored secrets under a running one), and `kms migrate`
        /// takes it for an instant to check the same.
        case running = 7315
    }

    /// Takes a transaction-scoped advisory lock keyed by purpose *and* table
    /// prefix: instances of one deployment serialise on it, while deployments
    /// (and tests) with other prefixes in the same database never wait on each
    /// other. A `hashtext` collision between two prefixes only serialises them.
    func lock(_ purpose: LockPurpose, on connection: PostgresConnection) async throws {
        for try await _ in try await connection.query(
            "SELECT pg_advisory_xact_lock(\(purpose.rawValue), hashtext(\(prefix)))", logger: logger)
        {}
    }

    /// Marks this connection's server as running on the deployment (see
    /// `LockPurpose.running`); released when the connection closes. Waits
    /// while a restore holds it.
    func holdRunningLock(on connection: PostgresConnection) async throws {
        for try await _ in try await connection.query(
            "SELECT pg_advisory_lock_shared(\(LockPurpose.running.rawValue), hashtext(\(prefix)))", logger: logger)
        {}
    }

    /// Whether no server holds `LockPurpose.running`: takes it exclusively
    /// for the rest of the transaction (a listener connecting meanwhile
    /// waits; the restore's table locks hold off a starting server's reads).
    func noServerRuns(on connection: PostgresConnection) async throws -> Bool {
        for try await (free) in try await connection.query(
            "SELECT pg_try_advisory_xact_lock(\(LockPurpose.running.rawValue), hashtext(\(prefix)))", logger: logger
        ).decode(Bool.self) {
            return free
        }
        return false
    }

    /// What `kms restore` and `kms migrate` answer while a server runs on the deployment.
    static func serverRunsRefusal(prefix: String) -> KMSError {
        KMSError(
            .invalidRequest,
            "a kms serve instance (or another kms restore) is using this database (KMS_DATABASE_PREFIX \(prefix)): stop every instance first"
        )
    }

    /// For `kms migrate`: refuses while any `kms serve` holds the running lock
    /// on this deployment, on any host. A check at one moment, before the
    /// copy: a server started during the copy is not seen (docs/postgres.md).
    public func refuseWhileAServerRuns() async throws(KMSError) {
        let prefix = prefix
        try await transaction("check that no server runs", timeout: .seconds(30)) { connection in
            guard try await self.noServerRuns(on: connection) else { throw Self.serverRunsRefusal(prefix: prefix) }
        }
    }

    /// Opens one connection as `url` says and reports whether it is
    /// encrypted, so that start-up fails clearly on a bad URL, credentials or
    /// certificate, and logs what protects the connection.
    public static func probe(url: String, logger: Logger) async throws -> Bool {
        try await probe(PostgresURL(url), logger: logger, timeout: startupTimeoutFloor)
    }

    /// The least start-up waits for the probe and the schema, whatever `callTimeout` says: a request
    /// can be retried, a start-up that fails on a slow first TLS handshake (a loaded host) cannot. It is
    /// the 10 s PostgresNIO gave the probe's connection before start-up had deadlines of its own.
    static let startupTimeoutFloor: Duration = .seconds(10)

    /// `timeout` bounds the whole probe: a listener that accepts and never answers (another service on
    /// the port, a paused database) fails start-up after it instead of holding it for ever.
    @discardableResult
    private static func probe(_ target: PostgresURL, logger: Logger, timeout: Duration) async throws -> Bool {
        // Before the connection, which may already be an impostor's (the second diff review).
        warnAboutImpostors(target, logger: logger)
        var options = try connectionConfiguration(target)
        // PostgresNIO's own limit on the connection's start comes after ours, so the failure says what it was.
        options.options.connectTimeout = .milliseconds(Int64(milliseconds(timeout)) + 1_000)
        let configuration = options
        let encrypted: Bool
        do {
            encrypted = try await withStartupDeadline("connect", timeout: timeout) {
                let connection = try await PostgresConnection.connect(
                    configuration: configuration, id: 0, logger: Self.quiet(logger))
                do {
                    let encrypted = try await Self.usesTLS(connection, logger: logger)
                    try? await connection.close()
                    return encrypted
                } catch {
                    try? await connection.close()
                    throw error
                }
            }
        } catch {
            throw StartupFailure(
                description:
                    "KMS_DATABASE_URL: cannot connect to \(target.location)/\(target.database) as \(target.username) (\(target.socketPath == nil ? "sslmode=\(target.sslMode.rawValue)" : "Unix socket")): \(describe(error))"
            )
        }
        let location = "\(target.location)/\(target.database)"
        if target.socketPath != nil {
            logger.notice("PostgreSQL connection uses a Unix socket", metadata: ["database": "\(location)"])
        } else if encrypted {
            logger.notice(
                "PostgreSQL connection uses TLS",
                metadata: ["database": "\(location)", "sslmode": "\(target.sslMode.rawValue)"])
            if !target.checksCertificate, !Self.isLoopback(target.host) {
                // A database writer can put back a revoked client's older record or a key's older versions
                // (docs/threat-model.md): unchecked TLS lets anyone on the path be that writer (a review).
                logger.warning(
                    "PostgreSQL connection to a non-loopback host does not check the database's certificate: whoever can intercept it can act as the database, and put back a revoked client or a key's older record; set sslmode=verify-full (with sslrootcert for your own CA)",
                    metadata: ["database": "\(location)", "sslmode": "\(target.sslMode.rawValue)"])
            }
        } else if !Self.isLoopback(target.host) {
            logger.warning(
                "PostgreSQL connection to a non-loopback host is plain TCP: key records and session hashes cross the network unencrypted; set sslmode=verify-full",
                metadata: ["database": "\(location)"])
        }
        return encrypted
    }

    /// What lets someone else answer in the database's place, said before connecting:
    /// - a password sent over TCP to a database whose certificate is not checked goes to whatever answers
    ///   at that address: on loopback, any local user who listens on the port while the database is down
    ///   or restarting (each instance reconnects within seconds) gets it in clear text or as a crackable
    ///   MD5 (a review); across a network, anyone on the path. Said for loopback too;
    /// - a socket in a folder every user may write (/tmp, PostgreSQL's built-in
    ///   default) can be made by another user while the database is down, as a loopback port can be taken
    ///   (another user's folder is not: the database's user owns its own, Debian's `/var/run/postgresql`).
    private static func warnAboutImpostors(_ target: PostgresURL, logger: Logger) {
        let location = "\(target.location)/\(target.database)"
        if let socket = target.socketPath {
            var folder = stat()
            let path = (socket as NSString).deletingLastPathComponent
            // Only every user: the folder is the database user's own (Debian's is postgres's, mode 2775).
            if stat(path, &folder) == 0, folder.st_mode & 0o002 != 0 {
                logger.warning(
                    "the PostgreSQL socket's folder is writable by every user: any of them can put a socket there while the database is down and act as the database (and be handed its password, when one is sent); use a folder only the database's user can write (Debian's /var/run/postgresql)",
                    metadata: ["folder": "\(path)"])
            }
        } else if target.password != nil, !target.checksCertificate {
            logger.warning(
                "PostgreSQL password is sent to whatever answers at the database's address: the database's certificate is not checked, so another local user listening on that port while the database is down (or anyone on the path) can be handed it; connect through the Unix socket (host=/var/run/postgresql, with peer authentication and no password) or set sslmode=verify-full with sslrootcert",
                metadata: ["database": "\(location)", "sslmode": "\(target.sslMode.rawValue)"])
        }
    }

    private static func usesTLS(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        var ssl = false
        let rows = try await connection.query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger)
        for try await (flag, ) in rows.decode(Bool.self) { ssl = flag }
        return ssl
    }

    /// `localhost`, `::1`, or an IPv4 literal in 127.0.0.0/8 (a name such as `127.db.example` is not).
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1 && host.hasPrefix("127.")
    }

    /// A readable reason for a PostgreSQL failure (never the password).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
            }
            switch error.code {
            case .sslUnsupported: return "the server does not offer TLS (sslmode requires it)"
            case .connectionError, .failedToAddSSLHandler:
                if let underlying = error.underlying, "\(type(of: underlying))".contains("SSL") {
                    return tlsReason(underlying)
                }
                return "connection refused or unreachable"
            case .serverClosedConnection: return "the server closed the connection"
            default: return "\(error.code)"
            }
        }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError].compactMap({ $0 }) {
                return describe(inner)
            }
        }
        return "\(error)"
    }

    /// A TLS failure in words: BoringSSL's own text names its source file on the build machine (a PostgreSQL
    /// operator's walkthrough read `…/.build/checkouts/…/handshake.cc:320`).
    static func tlsReason(_ error: any Error) -> String {
        let described = "\(error)"
        if described.contains("failedToValidateHostname") {
            return
                "TLS failed: the server's certificate is not for the host named in KMS_DATABASE_URL (sslmode=verify-full)"
        }
        let reason = TLSReason.code(in: error)
        if reason == "CERTIFICATE_VERIFY_FAILED" {
            return "TLS failed: the server's certificate does not chain to sslrootcert (CERTIFICATE_VERIFY_FAILED)"
        }
        return "TLS failed (\(reason ?? "no reason given"))"
    }

    /// The SQLSTATE of a server error, looking inside transaction errors.
    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError].compactMap({ $0 }) {
                if let state = sqlState(inner) { return state }
            }
        }
        return nil
    }

    /// Any database failure on a request path: `503` with the reason in the log
    /// only — except data the database refuses as malformed (SQLSTATE class 22),
    /// which came from the client and is a `400`.
    static func unavailable(_ error: any Error, _ what: String) -> KMSError {
        if let error = error as? KMSError { return error }
        if let state = sqlState(error), state.hasPrefix("22") {
            return KMSError(.invalidRequest, "a request value is not acceptable text (for example a NUL character)")
        }
        return KMSError.storageUnavailable("PostgreSQL \(what): \(describe(error))")
    }

    /// Runs `body` in a transaction; a `KMSError` thrown inside comes out as
    /// itself, and a unique violation (SQLSTATE 23505: a concurrent writer won
    /// a race the checks inside could not see) as `uniqueViolation` when given.
    ///
    /// `timeout`: its deadline (a request's, `callTimeout`, by default).
    ///
    /// `offline`: backup and restore, which run with no request waiting and may hold every key: a
    /// day's deadline (`offlineTimeout`) and no statement timeout (a backup's one `SELECT` of every key
    /// row runs as long as the records take to read; a review found it bound to the request's 5 s). Lock
    /// waits keep their limit. `SET LOCAL` is allowed before `SET TRANSACTION ISOLATION LEVEL`, which
    /// the backup's body sends first.
    ///
    /// `noIdleLimit`: for a restore, which checks every key it wrote before it commits, with no server
    /// running beside it; every other transaction keeps the pool's idle limit (a backup paused between
    /// two statements would hold its locks and snapshot for ever).
    func transaction<T: Sendable>(
        _ what: String, uniqueViolation: KMSError? = nil, timeout: Duration? = nil, offline: Bool = false,
        noIdleLimit: Bool = false,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(KMSError) -> T {
        let (client, logger) = (client, logger)
        // Under the deadline like every other call (a review found transactions had none); errors are
        // decided inside, so the deadline passes them on as they are.
        return try await withDeadline(what, timeout: offline ? Self.offlineTimeout : timeout) {
            do {
                return try await client.withTransaction(logger: logger) { connection in
                    if offline { try await connection.query("SET LOCAL statement_timeout = 0", logger: logger) }
                    if noIdleLimit {
                        try await connection.query("SET LOCAL idle_in_transaction_session_timeout = 0", logger: logger)
                    }
                    let value = try await body(connection)
                    // Abandoned at the deadline (its caller told 503, "retry"): rolled back, not committed
                    // behind the caller's back (a review found PostgresNIO commits a cancelled transaction).
                    try Task.checkCancellation()
                    return value
                }
            } catch let error as PostgresTransactionError {
                if let failure = error.closureError as? KMSError { throw failure }
                if let uniqueViolation, PostgresDatabase.sqlState(error) == "23505" { throw uniqueViolation }
                throw PostgresDatabase.unavailable(error, what)
            } catch {
                if let uniqueViolation, PostgresDatabase.sqlState(error) == "23505" { throw uniqueViolation }
                throw PostgresDatabase.unavailable(error, what)
            }
        }
    }

    /// How long a database call may take before the request is answered `503`,
    /// unless `KMS_DATABASE_TIMEOUT_MS` says otherwise.
    public static let defaultCallTimeout: Duration = .seconds(6)

    /// How long a transaction may sit idle between two statements before the database ends it.
    public static let idleTransactionLimit: Duration = .seconds(60)

    /// How long a batched `accept_seq` call may wait for its batch: all but a
    /// second of `callTimeout` (half of a short one), and `statementFloor`
    /// is what its statement then always has, so the two add up to the deadline.
    var acceptQueueBudget: Duration { max(callTimeout - .seconds(1), callTimeout / 2) }
    var statementFloor: Duration { callTimeout - acceptQueueBudget }

    /// Backup and restore: offline commands over every key, not requests.
    static let offlineTimeout: Duration = .seconds(86_400)

    /// `duration` in whole milliseconds.
    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds) * 1_000 + Int(duration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// `duration` as an error message says it: "6 s", "1500 ms".
    static func spoken(_ duration: Duration) -> String {
        let ms = milliseconds(duration)
        return ms % 1_000 == 0 ? "\(ms / 1_000) s" : "\(ms) ms"
    }

    /// Runs a database call with a deadline: an unreachable or stalled database
    /// answers `503` after `timeout` (`callTimeout` by default) instead of
    /// holding the request.
    ///
    /// The call runs in a task of its own that the caller does not wait for
    /// once the deadline passes: PostgresNIO waits for the database's answer
    /// whatever the cancellation, so a task group (which waits for its
    /// children) held the request as long as a silent database did (a review
    /// froze a proxy in front of the database: 40 s, not 6). The abandoned
    /// call is cancelled and ends when its connection does.
    func withDeadline<T: Sendable>(
        _ what: String, timeout: Duration? = nil, _ body: @escaping @Sendable () async throws -> T
    ) async throws(KMSError) -> T {
        try await Self.withDeadline(what, timeout: timeout ?? callTimeout, body)
    }

    /// Start-up's probe and schema under a deadline: `body`'s own error comes out as itself (it
    /// becomes the start-up failure's message), a deadline passed as "no answer within …".
    private static func withStartupDeadline<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome: Result<T, any Error>
        do {
            outcome = try await withDeadline(what, timeout: timeout) { () async -> Result<T, any Error> in
                do { return .success(try await body()) } catch { return .failure(error) }
            }
        } catch {
            // Only the deadline or a cancellation comes here: the body's own errors are in its result.
            throw NoAnswer(description: error.detail ?? error.message)
        }
        return try outcome.get()
    }

    /// Start-up's deadline passed; `description` says where and how long.
    private struct NoAnswer: Error, CustomStringConvertible {
        let description: String
    }

    /// `withDeadline` before a database exists.
    private static func withDeadline<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws(KMSError) -> T {
        let race = DeadlineRace<T>()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                    race.start(continuation)
                    race.setWork(
                        Task {
                            let result: Result<T, any Error>
                            do { result = .success(try await body()) } catch { result = .failure(error) }
                            race.finish(result)
                        })
                    race.setTimer(
                        Task {
                            try? await Task.sleep(for: timeout)
                            guard !Task.isCancelled else { return }
                            race.finish(
                                .failure(
                                    KMSError.storageUnavailable(
                                        "PostgreSQL \(what): no answer within \(Self.spoken(timeout))")))
                        })
                }
            } onCancel: {
                // The caller went away (shutdown, a cancelled backup): answered now, the call cancelled.
                race.finish(.failure(CancellationError()))
            }
        } catch is CancellationError {
            // Not an outage: no detail, so it is not logged as one (`needsOperatorAttention`).
            throw KMSError(
                .serverBusy, "the request was cancelled (the server may be stopping); try again",
                retryAfterSeconds: 1)
        } catch {
            throw Self.unavailable(error, what)
        }
    }
}

/// The two sides of `withDeadline`: the call and its timer. The first to
/// finish resumes the caller; the call, when first, cancels the timer.
private final class DeadlineRace<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        /// Set by the first `finish`; a result that comes before `start` waits in it.
        var result: Result<T, any Error>?
    }
    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        // Cancelled before the continuation existed: answered at once.
        let early = state.withLock { state -> Result<T, any Error>? in
            guard let result = state.result else {
                state.continuation = continuation
                return nil
            }
            return result
        }
        if let early { continuation.resume(with: early) }
    }

    func setWork(_ work: Task<Void, Never>) {
        let finished = state.withLock { state -> Bool in
            state.work = work
            return state.result != nil
        }
        if finished { work.cancel() }
    }

    func setTimer(_ timer: Task<Void, Never>) {
        let finished = state.withLock { state -> Bool in
            state.timer = timer
            return state.result != nil
        }
        if finished { timer.cancel() }
    }

    /// Resumes the caller with `result` unless another side did first, then
    /// cancels the others (the timer; the call, when it was abandoned).
    func finish(_ result: Result<T, any Error>) {
        typealias Taken = (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?)
        let taken = state.withLock { state -> Taken? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.timer)
        }
        guard let (continuation, work, timer) = taken else { return }
        timer?.cancel()
        if case .failure = result { work?.cancel() }
        continuation?.resume(with: result)
    }
}
