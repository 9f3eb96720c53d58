import Foundation
import KMSCore
import KMSProtocol
import Synchronization

/// An in-memory session store whose `deleteSessions(clientId:)` can be made
/// to fail, as a database that went away between two writes would (for the
/// revocation's second step), whose session lookups can be made to fail (a store
/// that cannot be read: every sealed call's `503`), and which can run a hook before
/// a session is created.
final class FailingSessionStore: SessionStore {
    let inner = InMemorySessionStore()
    let failClientDeletes = Mutex(false)
    let failLookups = Mutex(false)
    /// Run once, before the next session is created (a revocation landing
    /// between a key exchange's client check and its session).
    let beforeCreateSession = Mutex<(@Sendable () async -> Void)?>(nil)

    func deleteSessions(clientId: String) async throws(KMSError) -> Int {
        if failClientDeletes.withLock({ $0 }) { throw KMSError.storageUnavailable("test: sessions unreachable") }
        return try await inner.deleteSessions(clientId: clientId)
    }

    func addPending(_ pending: PendingSession, now: Date, perAddress: Int, max: Int) async throws(KMSError) {
        try await inner.addPending(pending, now: now, perAddress: perAddress, max: max)
    }
    func hasPending(id: String, now: Date) async throws(KMSError) -> Bool {
        try await inner.hasPending(id: id, now: now)
    }
    func takePending(id: String, now: Date) async throws(KMSError) -> PendingSession? {
        try await inner.takePending(id: id, now: now)
    }
    func createSession(_ session: SessionRecord, now: Date, max: Int, perClient: Int) async throws(KMSError) {
        if let hook = beforeCreateSession.withLock({ hook in
            defer { hook = nil }; return hook
        }) {
            await hook()
        }
        try await inner.createSession(session, now: now, max: max, perClient: perClient)
    }
    func session(tokenHash: TokenHash, now: Date) async throws(KMSError) -> SessionRecord? {
        if failLookups.withLock({ $0 }) { throw KMSError.storageUnavailable("test: No space left on device") }
        return try await inner.session(tokenHash: tokenHash, now: now)
    }
    func acceptSequence(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> Date {
        try await inner.acceptSequence(sessionId: sessionId, tokenHash: tokenHash, seq: seq, now: now, policy: policy)
    }
    func rotateToken(
        sessionId: String, oldTokenHash: TokenHash, newTokenHash: TokenHash, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> SessionRecord {
        try await inner.rotateToken(
            sessionId: sessionId, oldTokenHash: oldTokenHash, newTokenHash: newTokenHash, now: now, policy: policy)
    }
    func isTokenInUse(_ tokenHash: TokenHash, now: Date) async throws(KMSError) -> Bool {
        try await inner.isTokenInUse(tokenHash, now: now)
    }
    func deleteSession(id: String) async throws(KMSError) { try await inner.deleteSession(id: id) }
    func purgeExpired(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        try await inner.purgeExpired(now: now)
    }
    func counts(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        try await inner.counts(now: now)
    }
}
