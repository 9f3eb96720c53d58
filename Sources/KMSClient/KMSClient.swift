import Crypto
import Foundation
import KMSProtocol
import Synchronization

/// A client of the personal KMS: one session, safe to share between tasks.
///
/// It establishes the session lazily (init, optional fingerprint pinning,
/// key exchange, and the seq-0 confirmation), seals every call with a fresh
/// seq, checks that each answer is sealed for that seq and status, and
/// re-establishes the session once when it has expired — retrying the call
/// (with a new seq) when the refusal shows it did not run (`idempotent` calls).
/// When a resend's answer leaves the outcome unknown, only calls that read or
/// compute are made again; others fail `KMSClientError.outcomeUnknown`.
public final class KMSClient: Sendable {
    public let configuration: KMSClientConfiguration
    let transport: any KMSTransport
    private let gate = SessionGate()
    /// For tests (`@testable`): calls and changes parked at the session gate.
    var parkedAtTheGate: Int { gate.parked }
    let state: Mutex<State>
    /// The session's seqs, kept within the server's replay window of each other.
    let sequence: SequenceWindow
    let rotation = Mutex<Task<Void, Never>?>(nil)
    let rotations = Mutex(TokenRotations())

    /// Printed or dumped, the session key and token are left out (the extension at the end).
    struct Session {
        let id: String
        let key: SymmetricKey
        var token: String
        var expiresAt: String
        let generation: Int
        /// When this client believes the session ends (its own clock, 1 s early),
        /// so that it re-establishes before sending rather than after a refusal.
        var localExpiry: ContinuousClock.Instant
        let absoluteExpiry: ContinuousClock.Instant
        let ttl: Duration
        let sliding: Bool
        /// Marked ended by this client (the server said it is gone, or a cancelled `close()`): its
        /// expiry no longer slides with answers still arriving under it.
        var ended = false
    }

    struct State {
        var session: Session?
        var token: String
        var generation = 0
        /// Key exchanges finished (made or failed), and how the last one failed: calls that waited
        /// for an attempt share its failure instead of each making one of their own (`ensureSession`).
        var attempts = 0
        var lastFailure: (any Error)?
        /// The first server key accepted when offered, or proved by a confirmed exchange, without a pin
        /// and without `insecureTrustAnyServer` (so with a hook: trust on first use): every later
        /// exchange of this client must meet it (`holdFirstKey`).
        var metKey: String?
    }

    /// What the key exchange told the client.
    public struct SessionInfo: Sendable {
        public let sessionId: String
        public let fingerprint: String
        public let expiresAt: String
        public let ttlMs: Int64
        public let sliding: Bool
    }

    public init(_ configuration: KMSClientConfiguration, transport: (any KMSTransport)? = nil) throws {
        let token = configuration.token ?? Self.newToken(configuration)
        if let refusal = configuration.refusal { throw KMSClientError.configuration(refusal) }
        self.configuration = configuration
        self.transport = transport ?? HTTPTransport(baseURL: configuration.baseURL)
        state = Mutex(State(token: token))
        sequence = SequenceWindow()
    }

    deinit {
        rotation.withLock { $0?.cancel() }
    }

    /// The token currently naming the session.
    public var token: String { state.withLock { $0.token } }

    /// The current session id, if one is established.
    public var sessionId: String? { state.withLock { $0.session?.id } }

    // MARK: Session lifecycle

    /// Establishes a session now (calls do it lazily otherwise): to learn the server's key and session
    /// terms before the first call, or to fail early. A live session is replaced: with a drawn token the
    /// old one is left to expire on the server, with a fixed token it is ended first.
    @discardableResult
    public func connect() async throws -> SessionInfo {
        try await withChange { try await self.attemptSession() }
    }

    /// Rotates the token: to `newToken`, or to one the server issues.
    @discardableResult
    public func rotateToken(to newToken: String? = nil) async throws -> String {
        if let newToken, let refusal = KMSClientConfiguration.tokenRefusal(newToken, prefix: configuration.tokenPrefix)
        {
            // Refused here as a fixed token is at init, before anything is sent.
            throw KMSClientError.configuration(refusal)
        }
        try await ensureSession()
        return try await withChange { try await self.rotateHoldingTheGate(to: newToken) }
    }

    /// The rotation itself; the caller holds the gate's change side.
    private func rotateHoldingTheGate(to newToken: String?) async throws -> String {
        let generation = state.withLock { $0.generation }
        let reply: RotateTokenResponse
        do {
            reply = try await sealedCall("POST", WirePath.rotateToken, body: RotateTokenRequest(token: newToken))
        } catch KMSClientError.outcomeUnknown(let what) {
            // The server may hold the session under a token we never learnt: the next call starts afresh.
            expire(generation)
            throw KMSClientError.outcomeUnknown(what)
        } catch is NoSession {
            throw KMSClientError.protocolViolation("no session")
        } catch let error as KMSClientError where error.code == ErrorCode.unknownSession.rawValue {
            // Gone on the server (restarted, reaped, revoked): the next call makes a new one, as after any
            // call's `unknown_session` (a review: rotations kept failing until our idea of its expiry passed).
            expire(generation)
            throw error
        }
        state.withLock { state in
            state.token = reply.token
            state.session?.token = reply.token
            state.session?.expiresAt = reply.expiresAt
        }
        return reply.token
    }

    /// Runs `body` alone: no call is in flight while the session changes.
    private func withChange<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await gate.enterChange()
        // Handed the change side just as the task was cancelled: nothing is made for it (a key exchange
        // would fail as "no answer").
        if Task.isCancelled {
            gate.leaveChange()
            throw CancellationError()
        }
        do {
            let value = try await body()
            gate.leaveChange()
            return value
        } catch {
            gate.leaveChange()
            throw error
        }
    }

    /// Rotates the token every `interval` until `close()` (or the client is released).
    ///
    /// Only a live session's token is rotated: a session that ended (by this
    /// client's clock: idle past its TTL, or at its absolute lifetime) is not
    /// made again just to rotate it (a review: an idle app made a new session
    /// at every tick, forever). While the session lives, each rotation is a
    /// request and, with a sliding expiry, keeps it alive up to its absolute
    /// lifetime; the next call after that makes a new one.
    public func startTokenRotation(every interval: Duration) {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let self else { return }
                // Checked before the gate too: a tick with nothing to rotate holds no call back.
                guard let generation = self.liveGeneration() else { continue }
                // In a task of its own, which this timer's cancellation does not reach: a rotation cancelled
                // in flight (by `startTokenRotation` again) would end as an unknown outcome and drop the
                // session (a review). The timer stops at its next sleep instead.
                _ = await Task {
                    do {
                        let rotated = try await self.withChange { () -> Bool in
                            // The session live at the tick, not one made meanwhile: after `close()`, which this
                            // task's timer no longer stops once it waits here, a later call's session is not
                            // this timer's to rotate (a review).
                            guard self.liveGeneration() == generation else { return false }
                            _ = try await self.rotateHoldingTheGate(to: nil)
                            return true
                        }
                        if rotated { self.rotations.withLock { $0.rotated += 1 } }
                    } catch {
                        // Nothing awaits the timer: a failure is counted where the app can read it.
                        self.rotations.withLock { $0.failures[TokenRotations.cause(of: error), default: 0] += 1 }
                    }
                }.value
            }
        }
        rotation.withLock { old in
            old?.cancel()
            old = task
        }
    }

    /// How the timer's rotations went since this client was made. Nothing awaits the timer, so a
    /// rotation it could not make (the server's rate limit refused it, the server did not answer) is
    /// counted here rather than thrown; the session goes on under its current token, except after an
    /// unknown outcome (`outcome_unknown`), when the next call makes a new session.
    public var tokenRotations: TokenRotations { rotations.withLock { $0 } }

    /// Ends the session on the server (`DELETE /session`) and stops rotation. The client stays usable: a
    /// later call (one already waiting behind `close()` included) makes a new session.
    /// The session is forgotten here whatever the answer; a session the
    /// server no longer knows, or a resend whose first send may have ended
    /// it, counts as ended (one that was not expires on its own).
    ///
    /// It runs alone, as a session change: a key exchange in flight finishes
    /// first and its session is the one ended (a review: one finishing after
    /// `close()` returned left a session, and a rotation timer, running), and
    /// so do calls in flight (each at most its transport's deadline). A session
    /// that has ended by this client's clock is not made again only to be
    /// ended. A `close()` cancelled while it waits sends nothing and marks the
    /// session ended for this client (calls in flight finish with it, and the
    /// next call makes a new one); a key exchange it waited for may still
    /// finish after it.
    public func close() async throws {
        do {
            try await withChange {
                self.stopRotation()
                defer { self.state.withLock { $0.session = nil } }
                // Ended even when this client's clock says it has ended (1 s early, or after a rotation whose
                // outcome is unknown): the server may still hold it, and a fixed token with it (a review).
                // `sealedCall` never makes a session.
                do {
                    let _: EmptyBody = try await self.sealedCall("DELETE", WirePath.session, body: EmptyBody?.none)
                } catch KMSClientError.outcomeUnknown {
                    // Ended by the first send, or left to expire.
                } catch is NoSession {
                    // Nothing to end.
                } catch let error as KMSClientError where error.code == ErrorCode.unknownSession.rawValue {
                    // Already gone on the server.
                }
            }
        } catch is CancellationError {
            // Closed from a cancelled task: nothing was sent, and the session is left to expire. It is marked
            // ended here, not removed outside the gate: calls in flight finish with it instead of finding no
            // session and making one after `close()` returned (a review).
            stopRotation()
            markEnded { _ in true }
        }
    }

    /// Stops the rotation timer and forgets it, so that a session made after `close()` starts its own.
    private func stopRotation() {
        rotation.withLock { task in
            task?.cancel()
            task = nil
        }
    }

    // MARK: Calls

    /// A sealed call. `idempotent` calls are retried once after re-establishing
    /// an expired session (the server refused before running them); others
    /// fail with the server's error instead. Calls that only read or compute
    /// (`repeatable`) are also made once more, with a new seq, when a resend's
    /// answer left the outcome unknown; every other call fails `outcomeUnknown`
    /// then: repeating a change the first send made can fail (`409`) or undo
    /// someone else's change made in between. Once a send reached the server,
    /// a later turn's failure to make a session or to send, or a later plain
    /// refusal, is judged by that first send (`afterAFirstSend`).
    func call<Output: Decodable>(
        _ method: String, _ target: String, body: (some Encodable & Sendable)? = EmptyBody?.none, idempotent: Bool
    ) async throws -> Output {
        let repeatable = Self.isRepeatable(method, target)
        var (renewed, repeated, lostSession) = (false, false, false)
        // Key exchanges that end after this, failing, fail this call too (`sharedFailure`), also when it
        // found the session gone at the gate or renews it after `unknown_session`.
        let seen = state.withLock { $0.attempts }
        // Whether a turn reached the server, or may have: after it, a turn whose request or key exchange is never
        // sent does not make the call "never sent" (a review: a forged `unknown_session` to an idempotent change,
        // then a refused connection, reported a change that was made as never sent).
        var sent = false
        // A later turn's failure to make a session or to send, once an earlier turn reached the server: a change
        // may have been made, so any such failure is an unknown outcome (a review: a forged plain `503` to the
        // new session's init read as "refused before anything was done"); a read or computation fails with the
        // transport's error, never "never sent" nor "outcome unknown" (it may be repeated).
        func afterAFirstSend(_ error: any Error) -> any Error {
            guard sent, !(error is CancellationError) else { return error }
            guard !repeatable else {
                guard let never = error as? TransportNeverSent else { return error }
                if case KMSClientError.outcomeUnknown = never.underlying { return TransportNoAnswer(never.underlying) }
                return never.underlying
            }
            return KMSClientError.outcomeUnknown(
                "an earlier send of \(method) \(target) reached the server and its repeat failed (\(error)), so the "
                    + "server may have done it; read the state before repeating it")
        }
        while true {
            // Before a session may be made for it, at every turn: a key exchange of a cancelled task would
            // fail as "no answer" (reviews).
            try Task.checkCancellation()
            // The session it is sealed under may be newer than the one `ensureSession` found (another call's
            // re-establishment ran while this one waited at the gate): that one is judged after a refusal.
            var generation: Int
            do {
                generation = try await ensureSession(since: seen)
            } catch {
                throw afterAFirstSend(error)
            }
            try await gate.enterCall()
            do {
                let output: Output = try await sealedCall(method, target, body: body) { generation = $0 }
                gate.leaveCall()
                return output
            } catch is NoSession {
                gate.leaveCall()
                // Sent nothing: the session went while this call waited (a review: it read as a protocol
                // violation, as if the server had misbehaved).
                guard !lostSession else { throw afterAFirstSend(KMSClientError.protocolViolation("no session")) }
                lostSession = true
                continue
            } catch let error as KMSClientError {
                gate.leaveCall()
                // The server answered, or may have received it: a later turn's "never sent" is not this
                // call's (a review).
                let earlier = sent
                if case .configuration = error {} else { sent = true }
                let gone = error.code == ErrorCode.unknownSession.rawValue
                // The server no longer knows the session (restarted, reaped, ended elsewhere): the next
                // call makes a new one even when this one is not retried, instead of failing until our
                // own idea of its expiry passes.
                if gone { expire(generation) }
                // A later turn refused in plain words (which anyone on the path can forge, as the first
                // turn's `unknown_session` may have been) says nothing of the first send: a change may have
                // been made (a review).
                if earlier, !repeatable, let code = error.code, Self.plainBeforeAuthentication.contains(code) {
                    throw afterAFirstSend(error)
                }
                if case .outcomeUnknown = error, repeatable, !repeated {
                    repeated = true
                    continue
                }
                guard idempotent, gone, !renewed else { throw error }
                renewed = true
                try Task.checkCancellation()
                do {
                    try await reestablish(ifGeneration: generation, since: seen)
                } catch {
                    throw afterAFirstSend(error)
                }
            } catch let never as TransportNeverSent {
                gate.leaveCall()
                throw afterAFirstSend(never)
            } catch {
                gate.leaveCall()
                throw error
            }
        }
    }

    /// A call found no session to seal with: another call's re-establishment failed (or `close()` ran)
    /// while it waited at the gate. Nothing was sent; `call` asks for a session again, once, and
    /// otherwise it is reported as the protocol violation it was before.
    struct NoSession: Error {}

    /// The sealed POSTs that compute without changing anything: safe to make twice.
    static let repeatableTargets: Set<String> = [
        WirePath.encrypt, WirePath.decrypt, WirePath.rewrap, WirePath.dataKey, WirePath.random,
    ]

    static func isRepeatable(_ method: String, _ target: String) -> Bool {
        method == "GET" || repeatableTargets.contains(target)
    }

    /// Seals, sends and opens one request with the current session (no retry); `sealing` is told the
    /// generation of the session it is sealed under, before it is sent.
    func sealedCall<Output: Decodable>(
        _ method: String, _ target: String, body: (some Encodable & Sendable)?, sealing: (Int) -> Void = { _ in }
    ) async throws -> Output {
        // A cancelled task sends nothing: AsyncHTTPClient would fail the send at once, which reads as "no
        // answer" and, for a change, "outcome unknown", though nothing left (a review).
        try Task.checkCancellation()
        guard state.withLock({ $0.session }) != nil else { throw NoSession() }
        // Waits (cancellably) while the oldest unanswered seq would fall out of the server's window.
        let taken = try await sequence.take()
        defer { sequence.release(taken) }
        let seq = taken.seq
        // Woken just as the task was cancelled: still nothing sent (a review).
        try Task.checkCancellation()
        guard let session = state.withLock({ $0.session }) else { throw NoSession() }
        sealing(session.generation)
        let plaintext = try body.map { try WireJSON.encode($0) } ?? Data()
        let request = try Self.sealed(
            plaintext, method: method, target: target, sessionId: session.id, seq: seq, key: session.key,
            token: session.token)
        // The server slides the session's expiry from when it took the request, which is no earlier than this.
        let sentAt = ContinuousClock.now
        let response: TransportResponse
        do {
            response = try await transport.send(request)
        } catch let failure as TransportNeverSent {
            // Wrapped, as the key exchange's: "never sent" is the transport's to say (a review: a CLI that judged
            // the bare error called a refused resend, after a first send, "never sent").
            throw failure
        } catch let error as KMSClientError {
            throw error
        } catch {
            // Any other failure may have come after the request reached the server (any transport's, not
            // only ours: a custom transport that says nothing counts as "may have been sent"). A call that
            // reads or computes fails as the transport did; a change may have happened, which only the
            // state can tell.
            let underlying = (error as? TransportNoAnswer)?.underlying ?? error
            guard !Self.isRepeatable(method, target) else { throw underlying }
            throw KMSClientError.outcomeUnknown(
                "no answer came to \(method) \(target) (\(underlying)), so the server may have received "
                    + "it and done it; read the state before repeating it")
        }
        do {
            return try open(response, session: session, seq: seq, sentAt: sentAt)
        } catch let error as KMSClientError where response.resent && Self.hidesTheFirstSend(error, method, target) {
            throw KMSClientError.outcomeUnknown(
                "the connection closed before \(method) \(target) was answered, and its resend was refused "
                    + "(\(error.code ?? "")), so the server may have received it and done it; read the state before "
                    + "repeating it")
        } catch KMSClientError.server(let status, let code, _, _, _, _)
            where status >= 500 && !Self.isRepeatable(method, target)
        {
            // A failure after the request arrived may follow the change itself: the server answers a change
            // whose result entry could not be written `503 audit_unavailable` (docs/audit.md), a database
            // that stopped answering may have committed, and a proxy's 502 says nothing (a review).
            throw KMSClientError.outcomeUnknown(
                "the server answered \(status) \(code) to \(method) \(target), a failure that may have come after "
                    + "the change was made; read the state before repeating it")
        } catch let error as KMSClientError
            where !Self.isRepeatable(method, target) && error.code == ErrorCode.replayDetected.rawValue
        {
            // Not resent by us, yet refused as a replay (sealed, so the server said it): something on the
            // way (a proxy that retries, or an attacker who forwarded it and returns the answer to a copy,
            // as a review did) may have delivered it before, and the first copy may have been done. (It may
            // also have fallen out of the window, not done; only the state tells.) A plain unknown_session
            // is not read so: it is also the ordinary answer for a session that expired or ended.
            throw KMSClientError.outcomeUnknown(
                "\(method) \(target) was refused as a replay, which this client never sends: something between "
                    + "may have delivered it already and the server may have done it; read the state before "
                    + "repeating it")
        } catch KMSClientError.protocolViolation(let what) where !Self.isRepeatable(method, target) {
            // An answer that cannot be believed (tampered on the way, not sealed, not the JSON expected) came
            // after the request was sent: the change may have been made (a review: it read as a protocol
            // violation, and a caller would make the change again).
            throw KMSClientError.outcomeUnknown(
                "the answer to \(method) \(target) could not be believed (\(what)), so the server may have done it; "
                    + "read the state before repeating it")
        }
    }

    /// Whether `error`, the answer to a resend, may only say that the first send arrived: our seqs are
    /// never reused, so `replay_detected` means the server saw this seq (or a later one); a token
    /// rotation or session end that ran leaves the resend's token naming no session; and so does a
    /// server that did a change, then stopped before answering and forgot its sessions on the way back
    /// (a review: a rotation made that way was reported "refused, 401 unknown_session", and a caller
    /// would rotate again). So for any call that changes something, `unknown_session` to a resend is
    /// "outcome unknown"; a read or computation is simply made again in a new session.
    private static func hidesTheFirstSend(_ error: KMSClientError, _ method: String, _ target: String) -> Bool {
        switch error.code {
        case ErrorCode.replayDetected.rawValue: return true
        case ErrorCode.unknownSession.rawValue: return !isRepeatable(method, target)
        default: return false
        }
    }

    /// A sealed request: the envelope in the body (POST) or a header, and the token.
    static func sealed(
        _ plaintext: Data, method: String, target: String, sessionId: String, seq: UInt64, key: SymmetricKey,
        token: String
    ) throws -> TransportRequest {
        let envelope = try ClientSeal.sealRequest(
            plaintext, method: method, target: target, sessionId: sessionId, seq: seq, key: key)
        var headers = [(EnvelopePlacement.tokenHeader, token)]
        switch EnvelopePlacement(method: method) {
        case .header:
            headers.append((EnvelopePlacement.envelopeHeader, EnvelopePlacement.headerValue(envelope)))
            return TransportRequest(method: method, target: target, headers: headers, body: nil)
        case .body:
            headers.append(("Content-Type", "application/json"))
            return TransportRequest(method: method, target: target, headers: headers, body: envelope.json)
        }
    }

    /// Opens the answer to the sealed request `seq` of `session`.
    private func open<Output: Decodable>(
        _ response: TransportResponse, session: Session, seq: UInt64, sentAt: ContinuousClock.Instant
    ) throws -> Output {
        guard let sealed = try? SealedEnvelope(json: response.body) else {
            throw plainError(response, toSealedRequest: true)
        }
        let inner: Data
        do {
            inner = try ClientSeal.openResponse(
                sealed, sessionId: session.id, expectedSeq: seq, status: response.status, key: session.key)
        } catch {
            throw KMSClientError.protocolViolation(error.description)
        }
        let detail = response.status == 200 ? nil : (try? WireJSON.decode(ErrorBody.self, from: inner))?.error
        // A sealed answer means the server accepted the seq and slid the session's expiry, except a sealed
        // `replay_detected`, which refused the seq (protocol-v1 section 9: expiry slides only once a seq is
        // accepted); nor does it slide a session this client has marked ended (a review).
        // Nor a sealed `server_busy`, which may have left the seq unrecorded (docs/protocol.md section 6): not
        // sliding where the server may not have is the safe side (a review).
        let unslid = detail.map {
            [ErrorCode.replayDetected.rawValue, ErrorCode.serverBusy.rawValue].contains($0.code)
        }
        if unslid != true {
            state.withLock { state in
                guard state.session?.id == session.id, var current = state.session, current.sliding, !current.ended
                else { return }
                // From when the request left, not when the answer came: an audited call can take seconds, and
                // the server's sliding began when it took the request (a review finding). Never earlier than
                // it was: an answer to an earlier-sent call may come after a later one's (a review).
                current.localExpiry = max(
                    current.localExpiry, min(sentAt + current.ttl - .seconds(1), current.absoluteExpiry))
                state.session = current
            }
        }
        guard response.status == 200 else {
            throw KMSClientError.server(
                status: response.status, code: Self.printable(detail?.code ?? "unknown"),
                message: Self.printable(detail?.message ?? ""), requestId: detail.map { Self.printable($0.requestId) },
                field: detail?.field.map(Self.printable), retryAfter: Self.retryAfter(response))
        }
        do {
            return try WireJSON.decode(Output.self, from: inner)
        } catch {
            throw KMSClientError.protocolViolation("the sealed answer is not the expected JSON")
        }
    }

    /// A plain (unsealed) answer: only errors come this way; a plain 200 to a
    /// sealed request is refused as a protocol violation. To a sealed request
    /// only the refusals made before the envelope authenticates may be plain
    /// (protocol-v1 sections 8 and 9), and server failures (5xx); any other
    /// plain code (`decryption_failed`, `permission_denied`, …) is what only
    /// someone who is not the server would send, so it is not believed.
    func plainError(_ response: TransportResponse, toSealedRequest: Bool = false) -> KMSClientError {
        guard response.status >= 400, let body = try? WireJSON.decode(ErrorBody.self, from: response.body) else {
            if response.status >= 500 {
                // A proxy's 502 or 504 page (deploy.md puts one in front): a failure like the server's own, so
                // that a change answered so is an unknown outcome, not a protocol violation (a review).
                return .server(
                    status: response.status, code: "unknown",
                    message: "an answer with no error body, most likely from a proxy between this client and "
                        + "the server", requestId: nil, field: nil, retryAfter: Self.retryAfter(response))
            }
            return .protocolViolation("the server answered \(response.status) without a seal")
        }
        let code = Self.printable(body.error.code)
        if toSealedRequest, response.status < 500, !Self.plainBeforeAuthentication.contains(code) {
            return .protocolViolation(
                "a plain \(response.status) \(code) answer to a sealed request: only refusals made before "
                    + "authentication are unsealed (protocol-v1 section 9), so it is not the server's")
        }
        return .server(
            status: response.status, code: code, message: Self.printable(body.error.message),
            requestId: Self.printable(body.error.requestId), field: body.error.field.map(Self.printable),
            retryAfter: Self.retryAfter(response))
    }

    /// A `429` or `503` answer's `Retry-After` in seconds: delta-seconds only (RFC 9110 section 10.2.3;
    /// this server never sends a date), at most a day, since the header is outside the seal and only a
    /// hint (protocol-v1 section 9). Nil for any other status or value.
    static func retryAfter(_ response: TransportResponse) -> Int? {
        guard response.status == 429 || response.status == 503, let value = response.header("Retry-After"),
            (1...5).contains(value.utf8.count), value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let seconds = Int(value), seconds <= 86_400
        else { return nil }
        return seconds
    }

    /// The codes a sealed request may be refused with in plain JSON.
    static let plainBeforeAuthentication: Set<String> = Set(
        [
            ErrorCode.addressNotAllowed, .notFound, .methodNotAllowed, .payloadTooLarge, .invalidToken,
            .unknownSession, .invalidEnvelope, .authenticationFailed,
        ].map(\.rawValue))

    /// A server's text without control characters (it reaches a terminal):
    /// C0, DEL and C1 (a terminal may read U+009B as CSI), nor invisible
    /// ones (a bidi override makes a message read as another).
    static func printable(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.filter { !TerminalText.isUnsafe($0) }))
    }

    @discardableResult
    /// The live session's generation, made if needed. `since`: the key exchanges finished when the
    /// call began (now, by default).
    private func ensureSession(since: Int? = nil) async throws -> Int {
        if let generation = liveGeneration() { return generation }
        let seen = since ?? state.withLock { $0.attempts }
        return try await withChange {
            if let generation = self.liveGeneration() { return generation }
            if let failure = self.sharedFailure(since: seen) { throw failure }
            try await self.attemptSessionForACall()
            return self.state.withLock { $0.generation }
        }
    }

    /// The failure of the last key exchange, when one ended after `seen` and none succeeded since: a call
    /// that waited for it fails with it rather than trying one of its own (a review: a hundred calls queued
    /// behind a server that does not answer each tried in turn, failing one transport deadline after
    /// another, the last after fifty minutes). Nothing of the call itself was sent, so a failure that says
    /// the exchange may have reached the server (`TransportNoAnswer`, an unknown outcome) is
    /// `TransportNeverSent` for it: its own request never left (a change is not reported as "may have
    /// happened"). Any other failure (a refusal, a hook's error) is shared as it is.
    private func sharedFailure(since seen: Int) -> (any Error)? {
        guard let failure = state.withLock({ $0.attempts != seen ? $0.lastFailure : nil }) else { return nil }
        return Self.forTheCall(failure)
    }

    /// A key exchange's failure as the call that needed it sees it, the call that started the exchange
    /// included (a review: it got `TransportNoAnswer`, "may have been carried out", for a change it never sent,
    /// while the calls behind it got `TransportNeverSent`). `connect()`, whose own request the exchange is,
    /// keeps the exchange's failure as it is.
    private static func forTheCall(_ failure: any Error) -> any Error {
        switch failure {
        case KMSClientError.outcomeUnknown: return TransportNeverSent(failure)
        case let noAnswer as TransportNoAnswer: return TransportNeverSent(noAnswer.underlying)
        // A refusal, a server key not trusted (a hook's error), a transport's own: as they are.
        default: return failure
        }
    }

    /// `attemptSession` for a call that needs a session (not `connect()`): its failure as the call sees it.
    private func attemptSessionForACall() async throws {
        do {
            try await attemptSession()
        } catch {
            throw Self.forTheCall(error)
        }
    }

    /// `establish`, noting how it ended for the calls waiting behind it. A cancelled attempt is not
    /// theirs to share: they make their own. Its task's cancellation is what tells (a review): the
    /// transport reports a request cancelled in flight as no answer, not as `CancellationError`.
    @discardableResult
    private func attemptSession() async throws -> SessionInfo {
        do {
            let info = try await establish()
            state.withLock { state in
                state.attempts += 1
                state.lastFailure = nil
            }
            return info
        } catch {
            state.withLock { state in
                state.attempts += 1
                state.lastFailure = error is CancellationError || Task.isCancelled ? nil : error
            }
            throw error
        }
    }

    /// Marks the session of `generation` as expired by our clock (kept, so calls
    /// already past `ensureSession` still find it; the next one renews it).
    private func expire(_ generation: Int) {
        markEnded { $0.generation == generation }
    }

    /// Marks the current session ended by this client's clock when `which` holds for it: the next call
    /// makes a new one, and answers still arriving under it no longer slide its expiry.
    private func markEnded(_ which: (Session) -> Bool) {
        state.withLock { state in
            guard var session = state.session, which(session) else { return }
            session.localExpiry = .now
            session.ended = true
            state.session = session
        }
    }

    /// A token for a new session: the server's prefix and 32 CSPRNG bytes.
    static func newToken(_ configuration: KMSClientConfiguration) -> String {
        ClientToken.issue(prefix: configuration.tokenPrefix)
    }

    /// Draws the next session's token (a token the user fixed is never replaced: callers check).
    func drawToken() {
        state.withLock { $0.token = Self.newToken(configuration) }
    }

    /// The current session's generation, unless it is missing or (by our clock) expired.
    private func liveGeneration() -> Int? {
        state.withLock { state in
            guard let session = state.session, ContinuousClock.now < session.localExpiry else { return nil }
            return session.generation
        }
    }

    private func reestablish(ifGeneration generation: Int, since seen: Int) async throws {
        try await withChange {
            if let failure = self.sharedFailure(since: seen) { throw failure }
            guard self.state.withLock({ $0.session?.generation == generation }) else { return }
            try await self.attemptSessionForACall()
        }
    }
}

/// The session key and the token are bearer secrets: printed or dumped, a
/// session shows its id and expiry, never them (a review).
extension KMSClient.Session: CustomStringConvertible, CustomReflectable {
    var description: String { "Session(id: \(id), expiresAt: \(expiresAt), key and token redacted)" }
    var customMirror: Mirror {
        Mirror(self, children: ["id": id, "expiresAt": expiresAt, "key and token": "redacted"])
    }
}

extension KMSClient.State: CustomStringConvertible, CustomReflectable {
    var description: String { "State(session: \(session.map(\.description) ?? "none"), token redacted)" }
    var customMirror: Mirror {
        Mirror(self, children: ["session": session.map(\.description) ?? "none", "token": "redacted"])
    }
}
