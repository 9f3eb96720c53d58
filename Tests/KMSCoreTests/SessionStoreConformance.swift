import Crypto
import Foundation
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSTestSupport
import Testing

/// A named way to make a fresh, empty `SessionStore`: the conformance suite
/// runs against every one in `SessionStoreFactory.all`.
struct SessionStoreFactory: Sendable, CustomTestStringConvertible {
    let name: String
    let make: @Sendable () async throws -> any SessionStore

    var testDescription: String { name }

    /// In-memory always; PostgreSQL when `KMS_TEST_POSTGRES_URL` is set.
    static var all: [SessionStoreFactory] {
        var factories = [SessionStoreFactory(name: "in-memory", make: { InMemorySessionStore() })]
        if PostgresTestDatabase.url != nil {
            factories.append(
                SessionStoreFactory(name: "postgres") {
                    PostgresSessionStore(
                        database: try await PostgresTestDatabase.fresh(),
                        masterKey: try MasterKey(bytes: Data(repeating: 3, count: 32)))
                })
        }
        return factories
    }
}

/// The contract of `SessionStore`, checked the same way for every implementation.
@Suite(.shutsDownItsPools) struct SessionStoreConformance {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let policy = SessionPolicy()

    func session(
        _ id: String = UUID().uuidString, token: String? = nil, ttlMs: Int64 = 900_000, clientId: String? = nil
    ) -> SessionRecord {
        SessionRecord(
            id: id, tokenHash: ClientToken.hash(token ?? "tok-\(id)"), key: SymmetricKey(size: .bits256),
            createdAt: now,
            expiresAt: now.addingMilliseconds(ttlMs), absoluteExpiry: now.addingMilliseconds(86_400_000),
            clientId: clientId)
    }

    /// identity-v1 section 3: a session keeps its client; revoking the client ends all its sessions.
    @Test(arguments: SessionStoreFactory.all)
    func sessionsBelongToClients(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let phone = ClientRecord.newClientId()
        let laptop = ClientRecord.newClientId()
        let first = session(clientId: phone)
        let second = session(clientId: phone)
        let other = session(clientId: laptop)
        let anonymous = session()
        for record in [first, second, other, anonymous] {
            try await store.createSession(record, now: now, max: 100, perClient: .max)
        }
        #expect(try await store.session(tokenHash: first.tokenHash, now: now)?.clientId == phone)
        #expect(try await store.session(tokenHash: anonymous.tokenHash, now: now)?.clientId == nil)
        #expect(try await store.deleteSessions(clientId: phone) == 2)
        #expect(try await store.session(tokenHash: first.tokenHash, now: now) == nil)
        #expect(try await store.session(tokenHash: second.tokenHash, now: now) == nil)
        #expect(try await store.session(tokenHash: other.tokenHash, now: now)?.clientId == laptop)
        #expect(try await store.session(tokenHash: anonymous.tokenHash, now: now) != nil)
        #expect(try await store.deleteSessions(clientId: phone) == 0)
    }

    @Test(arguments: SessionStoreFactory.all)
    func pendingSessionsAreTakenOnceAndExpire(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.addPending(
            PendingSession(id: "p1", clientAddress: "a", expiresAt: now.addingTimeInterval(60)), now: now,
            perAddress: 10, max: 100)
        #expect(try await store.hasPending(id: "p1", now: now))
        #expect(try await store.takePending(id: "p1", now: now)?.id == "p1")
        #expect(try await store.takePending(id: "p1", now: now) == nil)
        try await store.addPending(
            PendingSession(id: "p2", clientAddress: "a", expiresAt: now.addingTimeInterval(60)), now: now,
            perAddress: 10, max: 100)
        let later = now.addingTimeInterval(60)
        #expect(try await !store.hasPending(id: "p2", now: later))
        #expect(try await store.takePending(id: "p2", now: later) == nil)
    }

    @Test(arguments: SessionStoreFactory.all)
    func pendingBoundsPerAddressAndInAll(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let expiry = now.addingTimeInterval(60)
        for index in 0..<3 {
            try await store.addPending(
                PendingSession(id: "a\(index)", clientAddress: "a", expiresAt: expiry), now: now, perAddress: 3,
                max: 5)
        }
        let perAddress = await #expect(throws: KMSError.self) {
            try await store.addPending(
                PendingSession(id: "a3", clientAddress: "a", expiresAt: expiry), now: now, perAddress: 3, max: 5)
        }
        #expect(perAddress?.code == .tooManyPendingSessions && perAddress?.retryAfterSeconds == 60)
        for index in 0..<2 {
            try await store.addPending(
                PendingSession(id: "b\(index)", clientAddress: "b", expiresAt: expiry), now: now, perAddress: 3,
                max: 5)
        }
        let global = await #expect(throws: KMSError.self) {
            try await store.addPending(
                PendingSession(id: "c0", clientAddress: "c", expiresAt: expiry), now: now, perAddress: 3, max: 5)
        }
        #expect(global?.code == .serverBusy && global?.retryAfterSeconds != nil)
        // Once they expire, room is made again.
        try await store.addPending(
            PendingSession(id: "c1", clientAddress: "c", expiresAt: expiry.addingTimeInterval(60)), now: expiry,
            perAddress: 3, max: 5)
        #expect(try await store.counts(now: expiry).pending == 1)
    }

    @Test(arguments: SessionStoreFactory.all)
    func sessionsAreFoundByTokenHashAndTokensAreUnique(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let first = session("s1", token: "token-one")
        try await store.createSession(first, now: now, max: 10, perClient: .max)
        #expect(try await store.session(tokenHash: ClientToken.hash("token-one"), now: now)?.id == "s1")
        #expect(try await store.isTokenInUse(ClientToken.hash("token-one"), now: now))
        let duplicate = await #expect(throws: KMSError.self) {
            try await store.createSession(session("s2", token: "token-one"), now: now, max: 10, perClient: .max)
        }
        #expect(duplicate?.code == .tokenInUse)
        // An id already held, under another token, is refused alike and changes nothing (the in-memory store
        // replaced the session; a review).
        let sameId = await #expect(throws: KMSError.self) {
            try await store.createSession(session("s1", token: "token-two"), now: now, max: 10, perClient: .max)
        }
        #expect(sameId?.code == .tokenInUse)
        #expect(try await store.session(tokenHash: ClientToken.hash("token-one"), now: now)?.id == "s1")
        #expect(try await store.session(tokenHash: ClientToken.hash("token-two"), now: now) == nil)
        let expired = now.addingMilliseconds(900_000)
        #expect(try await store.session(tokenHash: ClientToken.hash("token-one"), now: expired) == nil)
        // An expired session's token can be bound again.
        try await store.createSession(session("s3", token: "token-one"), now: expired, max: 10, perClient: .max)
    }

    @Test(arguments: SessionStoreFactory.all)
    func liveSessionsAreBounded(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session(), now: now, max: 2, perClient: .max)
        try await store.createSession(session(), now: now, max: 2, perClient: .max)
        let full = await #expect(throws: KMSError.self) {
            try await store.createSession(session(), now: now, max: 2, perClient: .max)
        }
        #expect(full?.code == .serverBusy)
    }

    /// A review filled the live-session bound from one enrolled client with no grant, and every other
    /// key exchange (the admin's, on every instance) was `503`. A client's live sessions are bounded on
    /// their own (`429 rate_limited`, `Retry-After` until its first expires); sessions of other clients,
    /// without a client, or expired are not counted.
    @Test(arguments: SessionStoreFactory.all)
    func liveSessionsAreBoundedPerClient(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let (phone, laptop) = (ClientRecord.newClientId(), ClientRecord.newClientId())
        try await store.createSession(session(ttlMs: 1_000, clientId: phone), now: now, max: 100, perClient: 2)
        try await store.createSession(session(ttlMs: 60_000, clientId: phone), now: now, max: 100, perClient: 2)
        let held = await #expect(throws: KMSError.self) {
            try await store.createSession(session(clientId: phone), now: now, max: 100, perClient: 2)
        }
        #expect(held?.code == .rateLimited && held?.retryAfterSeconds == 1, "\(String(describing: held))")
        for _ in 0..<3 {
            try await store.createSession(
                session(clientId: laptop), now: now.addingTimeInterval(0), max: 100, perClient: 3)
            try await store.createSession(session(), now: now, max: 100, perClient: 1)
        }
        // Once the first expires, the client has room again.
        let later = now.addingTimeInterval(2)
        try await store.createSession(session(clientId: phone), now: later, max: 100, perClient: 2)
    }

    @Test(arguments: SessionStoreFactory.all)
    func sequencesAreAcceptedOnceAndSlideTheExpiry(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let record = session("s1", ttlMs: 1_000)
        try await store.createSession(record, now: now, max: 10, perClient: .max)
        var sliding = policy
        sliding.ttlMs = 1_000
        let later = now.addingMilliseconds(500)
        #expect(
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("tok-s1"), seq: 2, now: later, policy: sliding)
                == later.addingMilliseconds(1_000))
        #expect(
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("tok-s1"), seq: 1, now: later, policy: sliding)
                == later.addingMilliseconds(1_000))
        let replay = await #expect(throws: KMSError.self) {
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("tok-s1"), seq: 2, now: later, policy: sliding)
        }
        #expect(replay?.code == .replayDetected)
        var fixed = sliding
        fixed.sliding = false
        #expect(
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("tok-s1"), seq: 3, now: later, policy: fixed)
                == later.addingMilliseconds(1_000))
        let gone = await #expect(throws: KMSError.self) {
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("tok-s1"), seq: 4, now: later.addingMilliseconds(1_000),
                policy: fixed)
        }
        #expect(gone?.code == .unknownSession)
    }

    /// Every store's window (PostgreSQL's is PL/pgSQL since issue 18) agrees with
    /// `ReplayWindow` seq for seq: jumps of every bit and byte offset, past the
    /// window, and late seqs inside and outside it.
    @Test(arguments: SessionStoreFactory.all)
    func theStoredWindowAgreesWithReplayWindow(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session("w"), now: now, max: 10, perClient: .max)
        var reference = ReplayWindow()
        var generator = SplitMix(seed: 18)
        var highest: UInt64 = 0
        for step in 0..<400 {
            let seq: UInt64
            switch generator.next() % 6 {
            case 0: seq = highest + 1
            case 1: seq = highest + 1 + generator.next() % 70
            case 2: seq = highest + 1 + generator.next() % 1_100
            case 3: seq = highest > 0 ? highest - min(highest - 1, generator.next() % 1_030) : 1
            case 4: seq = highest > 0 ? highest - min(highest - 1, generator.next() % 20) : 1
            default: seq = max(1, highest + 1 + generator.next() % 9)
            }
            let expected = reference.accept(seq)
            highest = reference.highest
            do {
                _ = try await store.acceptSequence(
                    sessionId: "w", tokenHash: ClientToken.hash("tok-w"), seq: seq, now: now, policy: policy)
                #expect(expected, "step \(step): seq \(seq) accepted by the store, refused by ReplayWindow")
            } catch {
                #expect(!expected && error.code == .replayDetected, "step \(step): seq \(seq): \(error.code)")
            }
        }
    }

    /// A jump whose skipped seqs wrap around PostgreSQL's ring (positions 1021…1023, then 0…95):
    /// late seqs in the wrapped part are fresh, old ones there are not.
    @Test(arguments: SessionStoreFactory.all)
    func aJumpAcrossTheRingsEndKeepsTheWindowExact(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session("r"), now: now, max: 10, perClient: .max)
        var reference = ReplayWindow()
        let seqs: [UInt64] = Array(1...1_020) + [1_120, 1_050, 1_050, 1_119, 1_021, 97, 96, 26, 1_100]
        for seq in seqs {
            let expected = reference.accept(seq)
            do {
                _ = try await store.acceptSequence(
                    sessionId: "r", tokenHash: ClientToken.hash("tok-r"), seq: seq, now: now, policy: policy)
                #expect(expected, "seq \(seq) accepted by the store, refused by ReplayWindow")
            } catch {
                #expect(!expected && error.code == .replayDetected, "seq \(seq): \(error.code)")
            }
        }
    }

    @Test(arguments: SessionStoreFactory.all)
    func slidingNeverPassesTheAbsoluteLifetime(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let record = SessionRecord(
            id: "s1", tokenHash: ClientToken.hash("t"), key: SymmetricKey(size: .bits256), createdAt: now,
            expiresAt: now.addingMilliseconds(1_000), absoluteExpiry: now.addingMilliseconds(1_500))
        try await store.createSession(record, now: now, max: 10, perClient: .max)
        var sliding = policy
        sliding.ttlMs = 1_000
        let expiry = try await store.acceptSequence(
            sessionId: "s1", tokenHash: ClientToken.hash("t"), seq: 1, now: now.addingMilliseconds(900), policy: sliding
        )
        #expect(expiry == now.addingMilliseconds(1_500))
    }

    /// Issue 17: sessions racing to rotate to one token: one wins, every
    /// other gets `token_in_use` (on PostgreSQL a unique violation, not a 503).
    @Test(arguments: SessionStoreFactory.all)
    func concurrentRotationsToOneTokenAreTokenInUse(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        let ids = (0..<8).map { "race\($0)" }
        for id in ids { try await store.createSession(session(id), now: now, max: 100, perClient: .max) }
        let outcomes = await withTaskGroup(of: ErrorCode?.self) { group in
            for id in ids {
                group.addTask {
                    do {
                        _ = try await store.rotateToken(
                            sessionId: id, oldTokenHash: ClientToken.hash("tok-\(id)"),
                            newTokenHash: ClientToken.hash("the-same-new-token"), now: self.now, policy: self.policy)
                        return nil
                    } catch {
                        return (error as? KMSError)?.code ?? .internalError
                    }
                }
            }
            return await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
        #expect(outcomes.compactMap { $0 }.allSatisfy { $0 == .tokenInUse }, "\(outcomes)")
    }

    @Test(arguments: SessionStoreFactory.all)
    func tokenRotationIsImmediateAndRateLimited(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session("s1", token: "old"), now: now, max: 10, perClient: .max)
        try await store.createSession(session("s2", token: "other"), now: now, max: 10, perClient: .max)
        var limited = policy
        limited.rotateMax = 2
        limited.rotateWindowMs = 10_000
        func rotate(_ from: String, _ to: String, at ms: Int64) async throws -> SessionRecord {
            try await store.rotateToken(
                sessionId: "s1", oldTokenHash: ClientToken.hash(from), newTokenHash: ClientToken.hash(to),
                now: now.addingMilliseconds(ms), policy: limited)
        }
        _ = try await rotate("old", "new1", at: 0)
        #expect(try await store.session(tokenHash: ClientToken.hash("old"), now: now) == nil)
        #expect(try await store.session(tokenHash: ClientToken.hash("new1"), now: now)?.id == "s1")
        // A rotation presented with the token that was just rotated away is refused.
        let stale = await #expect(throws: KMSError.self) { try await rotate("old", "new9", at: 0) }
        #expect(stale?.code == .unknownSession)
        let staleAccept = await #expect(throws: KMSError.self) {
            try await store.acceptSequence(
                sessionId: "s1", tokenHash: ClientToken.hash("old"), seq: 1, now: now, policy: limited)
        }
        #expect(staleAccept?.code == .unknownSession)
        let inUse = await #expect(throws: KMSError.self) { try await rotate("new1", "other", at: 0) }
        #expect(inUse?.code == .tokenInUse)
        _ = try await rotate("new1", "new2", at: 1_000)
        let limitedError = await #expect(throws: KMSError.self) { try await rotate("new2", "new3", at: 2_000) }
        #expect(limitedError?.code == .rateLimited && limitedError?.retryAfterSeconds == 8)
        // The window slides: the first rotation leaves it at +10 s.
        _ = try await rotate("new2", "new3", at: 10_001)
    }

    @Test(arguments: SessionStoreFactory.all)
    func deleteAndPurge(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session("s1", token: "t1"), now: now, max: 10, perClient: .max)
        try await store.createSession(session("s2", token: "t2", ttlMs: 1_000), now: now, max: 10, perClient: .max)
        try await store.deleteSession(id: "s1")
        #expect(try await store.session(tokenHash: ClientToken.hash("t1"), now: now) == nil)
        let removed = try await store.purgeExpired(now: now.addingMilliseconds(1_000))
        #expect(removed.sessions == 1)
        #expect(try await store.counts(now: now).sessions == 0)
    }

    /// 1,000 concurrent distinct seqs are each accepted exactly once; the same
    /// 1,000 again are all refused. On a loaded machine a call may miss its
    /// deadline (a transient `503`, never a replay): it is retried, and must
    /// then be accepted, because it was not recorded.
    @Test(arguments: SessionStoreFactory.all)
    func concurrentSequencesRaceCorrectly(_ factory: SessionStoreFactory) async throws {
        let store = try await factory.make()
        try await store.createSession(session("s1"), now: now, max: 10, perClient: .max)
        let policy = policy
        let now = now
        let tokenHash = ClientToken.hash("tok-s1")
        func race() async -> [(seq: Int, error: ErrorCode?)] {
            await withTaskGroup(of: (Int, ErrorCode?).self) { group in
                for seq in 1...1_000 {
                    group.addTask {
                        do {
                            _ = try await store.acceptSequence(
                                sessionId: "s1", tokenHash: tokenHash, seq: UInt64(seq), now: now, policy: policy)
                            return (seq, nil)
                        } catch {
                            return (seq, (error as? KMSError)?.code ?? .internalError)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        let first = await race()
        #expect(first.allSatisfy { $0.error != .replayDetected }, "a fresh seq was refused as a replay")
        for (seq, error) in first where error != nil {
            do {
                _ = try await store.acceptSequence(
                    sessionId: "s1", tokenHash: tokenHash, seq: UInt64(seq), now: now, policy: policy)
            } catch {
                // The timed-out call may have committed after its deadline: then it is a replay now.
                #expect(error.code == .replayDetected, "seq \(seq) was neither accepted nor recorded")
            }
        }
        let second = await race()
        #expect(second.allSatisfy { $0.error != nil }, "a seq was accepted twice")
        #expect(
            second.filter { $0.error == .replayDetected }.count + second.filter { $0.error == .serverBusy }.count
                == 1_000)
    }
}

/// A small deterministic generator (SplitMix64), so a failing sequence repeats.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
