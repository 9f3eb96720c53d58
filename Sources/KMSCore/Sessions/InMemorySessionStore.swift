import DequeModule
public import Foundation
public import KMSProtocol
import Synchronization

/// `SessionStore` in process memory, for a single instance.
///
/// One `Mutex` guards all state; every operation is short and never awaits
/// while holding it. Pending inits are kept in arrival order, which is also
/// expiry order (they share one TTL), so expired ones leave from the front
/// and memory stays bounded however many inits arrive.
public final class InMemorySessionStore: SessionStore {
    private struct State {
        var pending: [String: PendingSession] = [:]
        var pendingQueue: Deque<String> = []
        var pendingByAddress: [String: [Date]] = [:]
        var sessions: [String: SessionRecord] = [:]
        var sessionByToken: [TokenHash: String] = [:]
        /// Session ids by enrolled client, for the per-client bound without a scan of every session under
        /// the lock every request takes (the diff review).
        var sessionsByClient: [String: Set<String>] = [:]

        mutating func dropExpiredPending(now: Date) -> Int {
            var removed = 0
            while let id = pendingQueue.first {
                if let entry = pending[id] {
                    guard entry.expiresAt <= now else { break }
                    removePending(entry)
                    removed += 1
                }
                pendingQueue.removeFirst()
            }
            return removed
        }

        mutating func removePending(_ entry: PendingSession) {
            pending[entry.id] = nil
            if var expiries = pendingByAddress[entry.clientAddress] {
                if let index = expiries.firstIndex(of: entry.expiresAt) { expiries.remove(at: index) }
                pendingByAddress[entry.clientAddress] = expiries.isEmpty ? nil : expiries
            }
        }

        /// Drops ids of taken pending sessions from the queue, so that an
        /// init/exchange loop cannot grow it past a small multiple of `pending`.
        mutating func compactQueue() {
            while let id = pendingQueue.first, pending[id] == nil { pendingQueue.removeFirst() }
            if pendingQueue.count > 2 * pending.count + 64 {
                pendingQueue = Deque(pendingQueue.filter { pending[$0] != nil })
            }
        }

        mutating func removeSession(id: String) {
            guard let session = sessions.removeValue(forKey: id) else { return }
            if sessionByToken[session.tokenHash] == id { sessionByToken[session.tokenHash] = nil }
            if let client = session.clientId {
                sessionsByClient[client]?.remove(id)
                if sessionsByClient[client]?.isEmpty == true { sessionsByClient[client] = nil }
            }
        }

        /// The live session for a token hash, dropping it if it has expired.
        mutating func liveSession(tokenHash: TokenHash, now: Date) -> SessionRecord? {
            guard let id = sessionByToken[tokenHash], let session = sessions[id] else { return nil }
            guard session.isLive(at: now) else {
                removeSession(id: id)
                return nil
            }
            return session
        }

        mutating func liveSession(id: String, now: Date) -> SessionRecord? {
            guard let session = sessions[id] else { return nil }
            guard session.isLive(at: now) else {
                removeSession(id: id)
                return nil
            }
            return session
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// Entries in the pending queue (live or not yet dropped), for tests of its bound.
    var pendingQueueLength: Int { state.withLock { $0.pendingQueue.count } }

    public func addPending(_ entry: PendingSession, now: Date, perAddress: Int, max: Int) async throws(KMSError) {
        try state.withLock { state throws(KMSError) in
            _ = state.dropExpiredPending(now: now)
            let expiries = state.pendingByAddress[entry.clientAddress] ?? []
            if expiries.count >= perAddress {
                let first = expiries.min() ?? now
                throw KMSError.tooManyPending(retryAfter: retryAfterSeconds(until: first, now: now))
            }
            if state.pending.count >= max {
                let first = state.pendingQueue.first.flatMap { state.pending[$0]?.expiresAt } ?? now
                throw KMSError.busy("pending sessions", retryAfter: retryAfterSeconds(until: first, now: now))
            }
            state.pending[entry.id] = entry
            state.pendingQueue.append(entry.id)
            state.pendingByAddress[entry.clientAddress, default: []].append(entry.expiresAt)
        }
    }

    public func hasPending(id: String, now: Date) async throws(KMSError) -> Bool {
        state.withLock { state in
            guard let entry = state.pending[id] else { return false }
            return entry.expiresAt > now
        }
    }

    public func takePending(id: String, now: Date) async throws(KMSError) -> PendingSession? {
        state.withLock { state in
            guard let entry = state.pending[id] else { return nil }
            state.removePending(entry)
            state.compactQueue()
            return entry.expiresAt > now ? entry : nil
        }
    }

    public func createSession(_ session: SessionRecord, now: Date, max: Int, perClient: Int) async throws(KMSError) {
        try state.withLock { state throws(KMSError) in
            if state.liveSession(tokenHash: session.tokenHash, now: now) != nil { throw KMSError.tokenInUse }
            // An id already held is refused as PostgreSQL refuses it (its primary key): it was replaced here,
            // and the old token's index entry then named the new session (a review; ids come from single-use
            // pending sessions, so no request reaches it).
            if state.sessions[session.id] != nil { throw KMSError.tokenInUse }
            if let client = session.clientId, let ids = state.sessionsByClient[client], ids.count >= perClient {
                // At most `perClient` ids are looked at; the expired ones leave as they are found.
                for id in ids where state.sessions[id]?.isLive(at: now) != true { state.removeSession(id: id) }
                let held = state.sessionsByClient[client].map { $0.compactMap { state.sessions[$0] } } ?? []
                if held.count >= perClient {
                    let first = held.map(\.expiresAt).min() ?? now
                    throw KMSError.tooManySessions(retryAfter: retryAfterSeconds(until: first, now: now))
                }
            }
            if state.sessions.count >= max {
                state.sessions.values.filter { !$0.isLive(at: now) }.forEach { state.removeSession(id: $0.id) }
                if state.sessions.count >= max {
                    let first = state.sessions.values.map(\.expiresAt).min() ?? now
                    throw KMSError.busy("live sessions", retryAfter: retryAfterSeconds(until: first, now: now))
                }
            }
            state.sessions[session.id] = session
            state.sessionByToken[session.tokenHash] = session.id
            if let client = session.clientId { state.sessionsByClient[client, default: []].insert(session.id) }
        }
    }

    public func session(tokenHash: TokenHash, now: Date) async throws(KMSError) -> SessionRecord? {
        state.withLock { $0.liveSession(tokenHash: tokenHash, now: now) }
    }

    public func acceptSequence(
        sessionId: String, tokenHash: TokenHash, seq: UInt64, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> Date {
        try state.withLock { state throws(KMSError) in
            guard var session = state.liveSession(id: sessionId, now: now), session.tokenHash == tokenHash else {
                throw KMSError.unknownSession
            }
            guard session.window.accept(seq) else { throw KMSError.replayDetected }
            session.expiresAt = policy.slidExpiry(
                current: session.expiresAt, now: now, absoluteExpiry: session.absoluteExpiry)
            state.sessions[sessionId] = session
            return session.expiresAt
        }
    }

    public func rotateToken(
        sessionId: String, oldTokenHash: TokenHash, newTokenHash: TokenHash, now: Date, policy: SessionPolicy
    ) async throws(KMSError) -> SessionRecord {
        try state.withLock { state throws(KMSError) in
            guard var session = state.liveSession(id: sessionId, now: now), session.tokenHash == oldTokenHash else {
                throw KMSError.unknownSession
            }
            let windowStart = now.addingMilliseconds(-policy.rotateWindowMs)
            session.rotations.removeAll { $0 <= windowStart }
            if session.rotations.count >= policy.rotateMax {
                let first = session.rotations.min() ?? now
                let retry = retryAfterSeconds(until: first.addingMilliseconds(policy.rotateWindowMs), now: now)
                state.sessions[sessionId] = session
                throw KMSError.rotationLimited(retryAfter: retry, policy: policy)
            }
            if state.liveSession(tokenHash: newTokenHash, now: now) != nil { throw KMSError.tokenInUse }
            state.sessionByToken[session.tokenHash] = nil
            session.tokenHash = newTokenHash
            session.rotations.append(now)
            state.sessions[sessionId] = session
            state.sessionByToken[newTokenHash] = sessionId
            return session
        }
    }

    public func isTokenInUse(_ tokenHash: TokenHash, now: Date) async throws(KMSError) -> Bool {
        state.withLock { $0.liveSession(tokenHash: tokenHash, now: now) != nil }
    }

    public func deleteSession(id: String) async throws(KMSError) {
        state.withLock { $0.removeSession(id: id) }
    }

    public func deleteSessions(clientId: String) async throws(KMSError) -> Int {
        state.withLock { state in
            let ids = state.sessions.values.filter { $0.clientId == clientId }.map(\.id)
            ids.forEach { state.removeSession(id: $0) }
            return ids.count
        }
    }

    public func purgeExpired(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        state.withLock { state in
            let pending = state.dropExpiredPending(now: now)
            let expired = state.sessions.values.filter { !$0.isLive(at: now) }.map(\.id)
            expired.forEach { state.removeSession(id: $0) }
            if state.pending.isEmpty { state.pendingQueue.removeAll(keepingCapacity: false) }
            return (expired.count, pending)
        }
    }

    public func counts(now: Date) async throws(KMSError) -> (sessions: Int, pending: Int) {
        state.withLock { state in
            (
                state.sessions.values.count(where: { $0.isLive(at: now) }),
                state.pending.values.count(where: { $0.expiresAt > now })
            )
        }
    }
}
