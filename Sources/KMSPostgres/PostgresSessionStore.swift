import Crypto
import Foundation
public import KMSCore
public import KMSProtocol
import Logging
import NIOCore
import NIOFoundationCompat
import PostgresNIO
import Synchronization

/// `SessionStore` in PostgreSQL: sessions, pending inits, replay windows and
/// rotation history shared by every instance, so a session set up on one
/// instance works on any, and a seq accepted by one is a replay on all.
///
/// Each check-and-update runs in one transaction holding the session's row
/// lock (`SELECT … FOR UPDATE`). Session keys are stored wrapped by the master
/// key (AAD `kms-v1/session-key \n <session id>`), never raw. The global
/// bounds are counted inside transactions serialised by advisory locks, so
/// they hold across instances.
public final class PostgresSessionStore: SessionStore {
    let database: PostgresDatabase
    let masterKey: MasterKey
    let recent = PostgresSessionCache()
    /// One batcher per lane, one batched statement in flight per lane: a
    /// session's calls always take its lane, so two batches of this instance
    /// never want the same row (and a batch skips a row locked elsewhere).
    /// A contended entry's run alone happens outside the lanes.
    private let acceptLanes: [AcceptBatcher<AcceptEntry, AcceptRow?>]
    /// Runs alone in flight now. Each holds a pool connection while it waits
    /// (up to the lock timeout) for a row another instance holds, and a
    /// client replaying its own envelope through two instances makes as many
    /// as it likes: a review filled 30 of 32 connections that way. Past
    /// `maxAlone` a contended call is answered `503` (retry) instead, so the
    /// pool always keeps connections for everyone else's batches.
    private let aloneInFlight = Counter()
    /// The most runs alone ever in flight at once (what tests check).
    let aloneHighWater = Mutex(0)
    public static let maxAlone = 4

    /// `acceptLanes`: how many batched `accept_seq` statements this instance
    /// runs at once; concurrent sealed requests beyond it share one (see
    /// `AcceptBatcher`).
    public init(database: PostgresDatabase, masterKey: MasterKey, acceptLanes: Int = 2) {
        self.database = database
        self.masterKey = masterKey
        self.acceptLanes = (0..<max(1, acceptLanes)).map { _ in
            // Queued `acceptQueueBudget` at most: a statement always has `statementFloor` to run.
            AcceptBatcher(
                maxStatements: 1, maxQueuedPerKey: 128,
                maxWait: database.acceptQueueBudget,
                key: \.sessionId
            ) { entries in
                await Self.accept(entries, database: database)
            }
        }
    }

    /// The lane of `sessionId`: stable for the process's life.
    private func lane(of sessionId: String) -> AcceptBatcher<AcceptEntry, AcceptRow?> {
        acceptLanes[Int(UInt(bitPattern: sessionId.hashValue) % UInt(acceptLanes.count))]
    }

    private var sessions: String { database.table("sessions") }
    private var pending: String { database.table("pending") }
    private var logger: Logger { database.logger }

    private func run(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> Int {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            var rows = 0
            for try await _ in try await client.query(query, logger: logger) { rows += 1 }
            return rows
        }
    }

    private func scalar(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> Int {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            for try await value in try await client.query(query, logger: logger).decode(Int.self) {
                return value
            }
            return 0
        }
    }

    // MARK: Pending

    public func addPending(_ entry: PendingSession, now: Date, perAddress: Int, max: Int) async throws(KMSError) {
        let pending = self.pending
        let logger = self.logger
        let database = self.database
        // An address already at its bound is refused before the deployment-wide lock: every init on every
        // instance queued behind a host looping on its own 429s, until theirs timed out as 503 (a review).
        // The locked count below stays the one that admits.
        let (client, unlocked) = (database.client, self.logger)
        let early: (count: Int, oldest: Date?) = try await database.withDeadline("count pending sessions") {
            for try await row in try await client.query(
                "SELECT count(*), min(expires_at) FROM \(unescaped: pending) WHERE client_address = \(entry.clientAddress) AND expires_at > \(now)",
                logger: unlocked
            ).decode((Int, Date?).self) {
                return row
            }
            return (0, nil)
        }
        if early.count >= perAddress {
            throw KMSError.tooManyPending(retryAfter: retryAfterSeconds(until: early.oldest ?? now, now: now))
        }
        try await database.transaction("add pending session") { connection in
            try await database.lock(.pendingBound, on: connection)
            try await connection.query("DELETE FROM \(unescaped: pending) WHERE expires_at <= \(now)", logger: logger)
            var oldestForAddress: Date?
            var forAddress = 0
            for try await (count, oldest) in try await connection.query(
                "SELECT count(*), min(expires_at) FROM \(unescaped: pending) WHERE client_address = \(entry.clientAddress)",
                logger: logger
            ).decode((Int, Date?).self) {
                forAddress = count
                oldestForAddress = oldest
            }
            if forAddress >= perAddress {
                throw KMSError.tooManyPending(retryAfter: retryAfterSeconds(until: oldestForAddress ?? now, now: now))
            }
            for try await (count, oldest) in try await connection.query(
                "SELECT count(*), min(expires_at) FROM \(unescaped: pending)", logger: logger
            ).decode((Int, Date?).self) where count >= max {
                throw KMSError.busy("pending sessions", retryAfter: retryAfterSeconds(until: oldest ?? now, now: now))
            }
            try await connection.query(
                "INSERT INTO \(unescaped: pending) (id, client_address, expires_at) VALUES (\(entry.id), \(entry.clientAddress), \(entry.expiresAt))",
                logger: logger)
        }
    }

    public func hasPending(id: String, now: Date) async throws(KMSError) -> Bool {
        try await run(
            "read pending session", "SELECT 1 FROM \(unescaped: pending) WHERE id = \(id) AND expires_at > \(now)") > 0
    }

    public func takePending(id: String, now: Date) async throws(KMSError) -> PendingSession? {
        let (client, logger, pending) = (database.client, logger, pending)
        return try await database.withDeadline("take pending session") {
            for try await (address, expiresAt) in try await client.query(
                "DELETE FROM \(unescaped: pending) WHERE id = \(id) RETURNING client_address, expires_at",
                logger: logger
            ).decode((String, Date).self) {
                return expiresAt > now ? PendingSession(id: id, clientAddress: address, expiresAt: expiresAt) : nil
            }
            return nil
        }
    }

    // MARK: Sessions

    /// identity-v1: `kms-v1/session-key \n sessionId \n clientId` (empty with
    /// auth off). A row without a client id (NULL) was written by an instance
    /// from before identity-v1, with protocol-v1's AAD: still readable during
    /// a rolling upgrade.
    private func keyAAD(_ id: String, clientId: String?) -> String {
        guard let clientId else { return "kms-v1/session-key\n\(id)" }
        return "kms-v1/session-key\n\(id)\n\(clientId)"
    }

    public func createSession(_ session: SessionRecord, now: Date, max: Int, perClient: Int) async throws(KMSError) {
        let wrapped = try masterKey.wrap(
            session.key.withUnsafeBytes { Data($0) }, aad: keyAAD(session.id, clientId: session.clientId ?? ""))
        let sessions = self.sessions
        let logger = self.logger
        let database = self.database
        try await database.transaction("create session") { connection in
            // Serialises creations so the live-session bound holds across instances.
            try await database.lock(.sessionBound, on: connection)
            try await connection.query(
                "DELETE FROM \(unescaped: sessions) WHERE token_hash = \(session.tokenHash.bytes) AND expires_at <= \(now)",
                logger: logger)
            // The client's own bound first (its doing: 429), under the same lock, so it holds across instances.
            let client = session.clientId ?? ""
            for try await (count, first, held, heldFirst) in try await connection.query(
                """
                SELECT count(*), min(expires_at), count(*) FILTER (WHERE client_id = \(client) AND client_id <> ''),
                    min(expires_at) FILTER (WHERE client_id = \(client) AND client_id <> '')
                FROM \(unescaped: sessions) WHERE expires_at > \(now)
                """, logger: logger
            ).decode((Int, Date?, Int, Date?).self) {
                if held >= perClient {
                    throw KMSError.tooManySessions(retryAfter: retryAfterSeconds(until: heldFirst ?? now, now: now))
                }
                if count >= max {
                    throw KMSError.busy("live sessions", retryAfter: retryAfterSeconds(until: first ?? now, now: now))
                }
            }
            var inserted = false
            for try await _ in try await connection.query(
                """
                INSERT INTO \(unescaped: sessions) (id, token_hash, wrapped_key, created_at, expires_at, absolute_expiry,
                    window_highest, window_bits, window_ring, rotations, client_id)
                VALUES (\(session.id), \(session.tokenHash.bytes), \(wrapped), \(session.createdAt), \(session.expiresAt),
                    \(session.absoluteExpiry), \(Int(session.window.highest)), \(Data()),
                    CAST(\(Self.ring(session.window)) AS bit(1024)), \(""), \(session.clientId ?? ""))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: logger)
            {
                inserted = true
            }
            if !inserted { throw KMSError.tokenInUse }
        }
    }

    private typealias Row = (String, Data, Data, Date, Date, Date, Int, String, String, String?)
    /// `window_bits` (the window before migration 4) is left empty: the window is `window_ring`.
    private static let columns =
        "id, token_hash, wrapped_key, created_at, expires_at, absolute_expiry, window_highest, window_ring::text, rotations, client_id"

    private func record(_ row: Row) throws(KMSError) -> SessionRecord {
        let (id, hash, wrapped, createdAt, expiresAt, absoluteExpiry, highest, ring, rotations, clientId) = row
        guard let tokenHash = TokenHash(bytes: hash) else {
            throw KMSError.internal("a session row has a bad token hash")
        }
        let key = SymmetricKey(data: try masterKey.unwrap(wrapped, aad: keyAAD(id, clientId: clientId)))
        return SessionRecord(
            id: id, tokenHash: tokenHash, key: key, createdAt: createdAt, expiresAt: expiresAt,
            absoluteExpiry: absoluteExpiry, window: Self.window(highest: highest, ring: ring),
            rotations: Self.rotations(rotations), clientId: clientId.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// The session for a token: from this instance's cache of recent sessions
    /// when it can (`PostgresSessionCache` says why the database still decides).
    public func session(tokenHash: TokenHash, now: Date) async throws(KMSError) -> SessionRecord? {
        if let known = recent.session(tokenHash, now: now) { return known }
        let found = try await readSession(tokenHash: tokenHash, now: now)
        if let found { recent.store(found) }
        return found
    }

    /// Forgets the remembered session and reads the token's session again; a
    /// different one (by id) is returned, the same one is not (its key did not open).
    public func refreshedSession(tokenHash: TokenHash, stale: SessionRecord, now: Date) async throws(KMSError)
        -> SessionRecord?
    {
        recent.remove(tokenHash: tokenHash)
        guard let found = try await readSession(tokenHash: tokenHash, now: now) else { return nil }
        recent.store(found)
        return found.id == stale.id ? nil : found
    }

    private func readSession(tokenHash: TokenHash, now: Date) async throws(KMSError) -> SessionRecord? {
        let client = database.client
        let logger = self.logger
        let sessions = self.sessions
        let found: Row? = try await database.withDeadline("read session") {
            var found: Row?
            for try await row in try await client.query(
                "SELECT \(unescaped: Self.columns) FROM \(unescaped: sessions) WHERE token_hash = \(tokenHash.bytes) AND expires_at > \(now)",
                logger: logger
            ).decode(Row.self) {
                found = row
            }
            return found
        }
        return try found.map { row throws(KMSError) in try record(row) }
    }

    /// One statement (migration 4's `accept_seq`): the row lock, the window
    /// check and its update happen in the database in one round trip and one
    /// commit, instead of BEGIN, SELECT … FOR UPDATE, UPDATE and COMMIT.
    public func acceptSequence(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> Date {
        try await acceptSequenceReadingClient(
            sessionId: sessionId, tokenHash: tokenHash, seq: seq, now: now, policy: policy
        ).expiresAt
    }

    typealias AcceptRow = (Int, Date?, String?, String?, String?, Bool?, Bool?, [String]?, Data?, Int?)

    /// One `accept_seq` call's arguments.
    struct AcceptEntry: Sendable {
        let sessionId: String
        let tokenHash: Data
        let seq: Int64
        let now: Date
        let ttlMs: Int64
        let sliding: Bool
        /// When the caller is answered `503` if the database has not answered
        /// (the per-call deadline, counted from admission, queueing included).
        let deadline: ContinuousClock.Instant
    }

    /// The same statement also returns the session's client row, read after
    /// the update: a sealed call's whole database work is this one round trip,
    /// shared with the calls running at the same moment (`AcceptBatcher`).
    public func acceptSequenceReadingClient(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> AdmittedSequence {
        let entry = AcceptEntry(
            sessionId: sessionId, tokenHash: tokenHash.bytes, seq: Int64(clamping: seq), now: now, ttlMs: policy.ttlMs,
            sliding: policy.sliding, deadline: .now + database.callTimeout)
        var answer = try await lane(of: sessionId).run(entry)
        if answer?.0 == Self.refusedBatch.0 {
            // Its batch was refused as a whole (rare: a value the database cannot take, a serialization
            // failure): every entry runs alone, as before the cap below, so the innocent ones still succeed.
            answer = try await Self.acceptAlone(entry, database: database).get()
        } else if answer?.0 == Self.contended.0 {
            // Contended: alone, waiting for the row as a single call does, within the cap. The slot is
            // given back when the statement ends, not when its caller is answered: an abandoned statement
            // still holds its connection.
            let admitted = aloneInFlight.count.withLock { count -> Bool in
                guard count < Self.maxAlone else { return false }
                count += 1
                let now = count
                aloneHighWater.withLock { $0 = max($0, now) }
                return true
            }
            guard admitted else {
                throw KMSError(
                    .serverBusy, "the session is busy on another instance; try again shortly", retryAfterSeconds: 1)
            }
            let slots = aloneInFlight
            answer = try await Self.acceptAlone(entry, database: database) { slots.count.withLock { $0 -= 1 } }.get()
        }
        guard let answer else { throw KMSError.unknownSession }
        switch answer {
        case (
            0, let expires?, let id, let name, let fingerprint, let active, let admin, let keys, let sealed,
            let revision
        ):
            var stored: StoredClient?
            if let id, let name, let fingerprint, let active, let admin, let keys, let sealed, let revision {
                stored = StoredClient(
                    clientId: id, name: name, fingerprint: fingerprint, active: active, admin: admin,
                    accessKeyIds: keys, sealed: sealed, revision: revision)
            }
            return AdmittedSequence(expiresAt: expires, clientRead: true, client: stored)
        case (2, _, _, _, _, _, _, _, _, _):
            throw KMSError.replayDetected
        default:
            recent.remove { $0.id == sessionId }
            throw KMSError.unknownSession
        }
    }

    /// Runs `entries` as one statement (migration 5's `accept_seq_batch`):
    /// `accept_seq` on each, in (session, seq) order, in one transaction (one
    /// entry too, so a lane never waits for a row lock). An entry whose session row another transaction
    /// holds is answered 3 (contended: the batch never waits for a lock), and so
    /// is every entry of a batch the database refused as a whole (it rolled
    /// back): its caller then runs it alone, in its own task, after every
    /// other entry of the batch has been answered.
    static func accept(_ entries: [AcceptEntry], database: PostgresDatabase) async -> [Result<AcceptRow?, KMSError>] {
        let order = entries.indices.sorted {
            (entries[$0].sessionId, entries[$0].seq) < (entries[$1].sessionId, entries[$1].seq)
        }
        switch await acceptBatch(order.map { entries[$0] }, database: database) {
        case .failure(let error):
            return entries.map { _ in .failure(error) }
        case .success(nil):
            return entries.map { _ in .success(Self.refusedBatch) }
        case .success(let rows?):
            var answers = [Result<AcceptRow?, KMSError>](
                repeating: .failure(KMSError.storageUnavailable("PostgreSQL accept seq: a batch left out an entry")),
                count: entries.count)
            for (position, index) in order.enumerated() {
                if let row = rows[position] { answers[index] = .success(row) }
            }
            return answers
        }
    }

    /// Outcome 3: the row is held elsewhere; run this entry alone (within `maxAlone`).
    static let contended: AcceptRow = (3, nil, nil, nil, nil, nil, nil, nil, nil, nil)
    /// Not the database's: the batch was refused as a whole and rolled back; run this entry alone.
    static let refusedBatch: AcceptRow = (4, nil, nil, nil, nil, nil, nil, nil, nil, nil)

    /// The time left before `deadline`, at least `floor` (the database's
    /// `statementFloor`): a batch's statement gets what its most hurried entry has left.
    static func timeLeft(_ deadline: ContinuousClock.Instant, floor: Duration) -> Duration {
        max(floor, deadline - .now)
    }

    /// One `accept_seq` call; `whenEnded` runs when its statement ends,
    /// which may be after its caller was answered at the deadline.
    static func acceptAlone(
        _ entry: AcceptEntry, database: PostgresDatabase, whenEnded: (@Sendable () -> Void)? = nil
    ) async -> Result<AcceptRow?, KMSError> {
        let (client, logger, function) = (database.client, database.logger, database.table("accept_seq"))
        let size = Int64(ReplayWindow.size)
        do throws(KMSError) {
            return .success(
                try await database.withDeadline(
                    "accept seq", timeout: timeLeft(entry.deadline, floor: database.statementFloor)
                ) {
                    defer { whenEnded?() }
                    var answer: AcceptRow?
                    for try await row in try await client.query(
                        """
                        SELECT * FROM \(unescaped: function)(\(entry.sessionId), \(entry.tokenHash), \(entry.seq),
                          \(entry.now), \(entry.ttlMs), \(entry.sliding), \(size))
                        """,
                        logger: logger
                    ).decode(AcceptRow.self) {
                        answer = row
                    }
                    return answer
                })
        } catch {
            return .failure(error)
        }
    }

    /// `accept_seq_batch` on `entries` (already in lock order): a row per
    /// position (3: contended), or nil when the database refused the batch as
    /// a whole and rolled it back.
    static func acceptBatch(_ entries: [AcceptEntry], database: PostgresDatabase) async -> Result<
        [Int: AcceptRow]?, KMSError
    > {
        let (client, logger, function) = (database.client, database.logger, database.table("accept_seq_batch"))
        let size = Int64(ReplayWindow.size)
        let (ids, tokens, seqs) = (
            entries.map(\.sessionId), entries.map { ByteBuffer(data: $0.tokenHash) }, entries.map(\.seq)
        )
        let (nows, ttls, slidings) = (entries.map(\.now), entries.map(\.ttlMs), entries.map(\.sliding))
        let timeout = timeLeft(entries.map(\.deadline).min() ?? .now, floor: database.statementFloor)
        do throws(KMSError) {
            return .success(
                try await database.withDeadline("accept seq", timeout: timeout) {
                    var rows: [Int: AcceptRow] = [:]
                    do {
                        for try await row in try await client.query(
                            """
                            SELECT * FROM \(unescaped: function)(\(ids), \(tokens), \(seqs), \(nows), \(ttls), \(slidings),
                              \(size))
                            """,
                            logger: logger
                        ).decode(
                            (Int, Int, Date?, String?, String?, String?, Bool?, Bool?, [String]?, Data?, Int?).self)
                        {
                            rows[row.0 - 1] = (row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10)
                        }
                    } catch  where Self.isBatchRefusal(error) {
                        // Refused for something one entry caused (a value it cannot take) or a serialization
                        // failure: the statement's transaction rolled back, so nothing in it was accepted.
                        return nil
                    }
                    return rows
                })
        } catch {
            return .failure(error)
        }
    }

    /// A data exception, a serialization failure or a deadlock (which the
    /// batch, never waiting for a lock, should not meet): worth trying entry by
    /// entry. A timeout, a lock wait or a lost connection is not: it would only
    /// make every caller wait twice.
    static func isBatchRefusal(_ error: any Error) -> Bool {
        guard let state = PostgresDatabase.sqlState(error) else { return false }
        return state.hasPrefix("22") || state == "40001" || state == "40P01"
    }

    public func rotateToken(
        sessionId: String, oldTokenHash: TokenHash, newTokenHash: TokenHash, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> SessionRecord {
        defer { recent.remove { $0.id == sessionId } }
        let sessions = self.sessions
        let logger = self.logger
        // Two sessions rotating to one token at once: the loser's UPDATE breaks
        // the token_hash unique index, which is the contract's 409, not a 503.
        let row: Row = try await database.transaction("rotate token", uniqueViolation: .tokenInUse) { connection in
            var found: Row?
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM \(unescaped: sessions) WHERE id = \(sessionId) FOR UPDATE",
                logger: logger
            ).decode(Row.self) {
                found = row
            }
            guard var row = found, row.4 > now, TokenHash(bytes: row.1) == oldTokenHash else {
                throw KMSError.unknownSession
            }
            let windowStart = now.addingMilliseconds(-policy.rotateWindowMs)
            var rotations = Self.rotations(row.8).filter { $0 > windowStart }
            if rotations.count >= policy.rotateMax {
                let first = rotations.min() ?? now
                throw KMSError.rotationLimited(
                    retryAfter: retryAfterSeconds(until: first.addingMilliseconds(policy.rotateWindowMs), now: now),
                    policy: policy)
            }
            try await connection.query(
                "DELETE FROM \(unescaped: sessions) WHERE token_hash = \(newTokenHash.bytes) AND expires_at <= \(now)",
                logger: logger)
            for try await _ in try await connection.query(
                "SELECT 1 FROM \(unescaped: sessions) WHERE token_hash = \(newTokenHash.bytes)", logger: logger)
            {
                throw KMSError.tokenInUse
            }
            rotations.append(now)
            row.1 = newTokenHash.bytes
            row.8 = Self.rotationsText(rotations)
            try await connection.query(
                "UPDATE \(unescaped: sessions) SET token_hash = \(row.1), rotations = \(row.8) WHERE id = \(sessionId)",
                logger: logger)
            return row
        }
        return try record(row)
    }

    public func isTokenInUse(_ tokenHash: TokenHash, now: Date) async throws(KMSError) -> Bool {
        try await run(
            "read token",
            "SELECT 1 FROM \(unescaped: sessions) WHERE token_hash = \(ByteBuffer(data: tokenHash.bytes)) AND expires_at > \(now)"
        ) > 0
    }

    public func deleteSession(id: String) async throws(KMSError) {
        defer { recent.remove { $0.id == id } }
        _ = try await run("delete session", "DELETE FROM \(unescaped: sessions) WHERE id = \(id) RETURNING id")
    }

    public func deleteSessions(clientId: String) async throws(KMSError) -> Int {
        defer { recent.remove { $0.clientId == clientId } }
        return try await run(
            "delete client sessions", "DELETE FROM \(unescaped: sessions) WHERE client_id = \(clientId) RETURNING id")
    }

    public func purgeExpired(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        let removedSessions = try await run(
            "purge sessions", "DELETE FROM \(unescaped: sessions) WHERE expires_at <= \(now) RETURNING id")
        let removedPending = try await run(
            "purge pending", "DELETE FROM \(unescaped: pending) WHERE expires_at <= \(now) RETURNING id")
        return (removedSessions, removedPending)
    }

    public func counts(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        (
            try await scalar("count sessions", "SELECT count(*) FROM \(unescaped: sessions) WHERE expires_at > \(now)"),
            try await scalar("count pending", "SELECT count(*) FROM \(unescaped: pending) WHERE expires_at > \(now)")
        )
    }

    // MARK: Encodings

    /// A window as `window_ring` text (migration 4): character `s mod 1024` is
    /// `1` when seq `s` was seen, for the seqs the window covers.
    static func ring(_ window: ReplayWindow) -> String {
        var ring = [UInt8](repeating: UInt8(ascii: "0"), count: Int(ReplayWindow.size))
        for offset in 0..<ReplayWindow.size where offset < window.highest {
            let seq = window.highest - offset
            if !window.isFresh(seq) { ring[Int(seq % ReplayWindow.size)] = UInt8(ascii: "1") }
        }
        return String(decoding: ring, as: UTF8.self)
    }

    /// `ReplayWindow` (shifted: bit `i` is seq `highest - i`) from `window_ring` text.
    static func window(highest: Int, ring: String) -> ReplayWindow {
        let ring = Array(ring.utf8)
        let top = UInt64(max(0, highest))
        var words = [UInt64](repeating: 0, count: Int(ReplayWindow.size) / 64)
        guard ring.count == Int(ReplayWindow.size) else { return ReplayWindow(highest: top, bits: words) }
        for offset in 0..<ReplayWindow.size where offset < top {
            if ring[Int((top - offset) % ReplayWindow.size)] == UInt8(ascii: "1") {
                words[Int(offset / 64)] |= 1 << (offset % 64)
            }
        }
        return ReplayWindow(highest: top, bits: words)
    }

    static func rotations(_ text: String) -> [Date] {
        text.split(separator: ",").compactMap { Int64($0) }.map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    static func rotationsText(_ dates: [Date]) -> String {
        dates.map { String(Timestamp.milliseconds($0)) }.joined(separator: ",")
    }
}

/// A count shared with tasks that outlive the call that made them.
final class Counter: Sendable {
    let count = Mutex(0)
}
