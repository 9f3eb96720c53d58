public import Foundation
public import KMSProtocol

/// Where sessions, pending inits, replay windows and rotation history live.
///
/// Every method is atomic with respect to the others: a store shared by
/// several instances (PostgreSQL) gives the same guarantees as the in-memory
/// one, which is what makes a session usable from any instance. Methods take
/// `now` instead of reading a clock so that expiry is decided by the caller's
/// (injectable) clock. Expired entries behave as absent even before `purgeExpired`.
/// What `acceptSequenceReadingClient` answers.
public struct AdmittedSequence: Sendable {
    public var expiresAt: Date
    /// Whether `client` was read (after the seq was admitted); when false the caller reads it.
    public var clientRead: Bool
    /// The session's client row as read (nil: none).
    public var client: StoredClient?

    public init(expiresAt: Date, clientRead: Bool = false, client: StoredClient? = nil) {
        self.expiresAt = expiresAt
        self.clientRead = clientRead
        self.client = client
    }
}

extension SessionStore {
    /// Without a cache of its own a store has nothing newer to offer.
    public func refreshedSession(tokenHash: TokenHash, stale: SessionRecord, now: Date) async throws(KMSError)
        -> SessionRecord?
    { nil }

    public func acceptSequenceReadingClient(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> AdmittedSequence {
        AdmittedSequence(
            expiresAt: try await acceptSequence(
                sessionId: sessionId, tokenHash: tokenHash, seq: seq, now: now, policy: policy))
    }
}

public protocol SessionStore: Sendable {
    /// Adds a pending session. Throws `too_many_pending_sessions` (429) past
    /// `perAddress` live entries for its address, `server_busy` (503) past `max` in all.
    func addPending(_ pending: PendingSession, now: Date, perAddress: Int, max: Int) async throws(KMSError)

    /// Whether a live pending session with this id exists (does not consume it).
    func hasPending(id: String, now: Date) async throws(KMSError) -> Bool

    /// Removes and returns a live pending session: each can be taken once.
    func takePending(id: String, now: Date) async throws(KMSError) -> PendingSession?

    /// Stores a new session. Throws `token_in_use` (409) when its token hash
    /// names a live session, `server_busy` (503) past `max` live sessions, and
    /// `rate_limited` (429) when its client already holds `perClient` live ones.
    func createSession(_ session: SessionRecord, now: Date, max: Int, perClient: Int) async throws(KMSError)

    /// The live session bound to this token hash.
    func session(tokenHash: TokenHash, now: Date) async throws(KMSError) -> SessionRecord?

    /// Records `seq` in the session's replay window and sets the expiry to
    /// `policy.slidExpiry`, atomically. Throws `replay_detected` (401) for a
    /// seen or too old seq, `unknown_session` (401) when the session is gone
    /// or no longer bound to `tokenHash` (rotated away meanwhile).
    /// Returns the session's new expiry.
    func acceptSequence(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> Date

    /// When an envelope did not open under `stale` (a session this instance
    /// remembered): the session the store holds for the token now, if it is
    /// another one (the token was freed elsewhere and taken by a new session);
    /// nil otherwise.
    func refreshedSession(tokenHash: TokenHash, stale: SessionRecord, now: Date) async throws(KMSError)
        -> SessionRecord?

    /// `acceptSequence`, and, where the store can do both in one step, the
    /// session's client row read *after* the seq was admitted (identity-v1
    /// section 3): PostgreSQL answers both in one statement. The default reads
    /// no client (`clientRead` false: the caller reads it).
    func acceptSequenceReadingClient(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> AdmittedSequence

    /// Binds the session from `oldTokenHash` to `newTokenHash` (the old one
    /// stops at once), at most `policy.rotateMax` times per
    /// `policy.rotateWindowMs`. Throws `rate_limited` (429, with retry-after),
    /// `token_in_use` (409), `unknown_session` (401, also when the session is
    /// no longer bound to `oldTokenHash`). Returns the updated session.
    func rotateToken(
        sessionId: String, oldTokenHash: TokenHash, newTokenHash: TokenHash, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> SessionRecord

    /// Whether this token hash names a live session.
    func isTokenInUse(_ tokenHash: TokenHash, now: Date) async throws(KMSError) -> Bool

    /// Ends a session; its token and key stop working at once.
    func deleteSession(id: String) async throws(KMSError)
    /// Ends every session of a client (its revocation); returns how many.
    func deleteSessions(clientId: String) async throws(KMSError) -> Int

    /// Removes expired sessions and pending inits; returns how many of each.
    func purgeExpired(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int)

    /// Live counts, for metrics and tests.
    func counts(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int)
}

extension KMSError {
    public static let replayDetected = KMSError(
        .replayDetected, "this seq was already used or is too old for the replay window; use a new, higher seq")

    public static func tooManyPending(retryAfter: Int) -> KMSError {
        KMSError(
            .tooManyPendingSessions,
            "too many pending sessions for this address; complete or let expire the ones you started",
            retryAfterSeconds: retryAfter)
    }

    /// One client's live sessions at `KMS_SESSIONS_PER_CLIENT`: its own doing, so a 429, with
    /// `Retry-After` until the first of them expires.
    public static func tooManySessions(retryAfter: Int) -> KMSError {
        KMSError(
            .rateLimited,
            "this client holds the most live sessions one client may (KMS_SESSIONS_PER_CLIENT); end one (DELETE /session) or let one expire",
            retryAfterSeconds: retryAfter)
    }

    public static func busy(_ what: String, retryAfter: Int) -> KMSError {
        KMSError(
            .serverBusy, "the server holds the most \(what) it allows; try again later", retryAfterSeconds: retryAfter)
    }

    public static func rotationLimited(retryAfter: Int, policy: SessionPolicy) -> KMSError {
        KMSError(
            .rateLimited,
            "at most \(policy.rotateMax) token rotations per \(policy.rotateWindowMs) ms; retry after \(retryAfter) s",
            retryAfterSeconds: retryAfter)
    }
}
