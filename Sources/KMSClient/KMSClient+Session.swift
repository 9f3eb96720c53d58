import Crypto
import Foundation
import KMSProtocol

/// Making a session: init, the pin check, the key exchange and its seq-0
/// confirmation, and what a key exchange whose answer was lost leaves.
extension KMSClient {
    /// A new session, renewing the current one if there is one. A token the
    /// user did not fix is drawn afresh for each new session, so a renewal
    /// never collides with the old session still alive on the server; a
    /// fixed token first ends the old session (`DELETE /session`, best
    /// effort: it may have expired already). A `409 token_in_use` from the
    /// key exchange is answered by drawing another token, unless fixed.
    /// Caller holds the gate's change side.
    @discardableResult
    func establish() async throws -> SessionInfo {
        let fixedToken = configuration.token != nil
        if state.withLock({ $0.session }) != nil {
            if fixedToken {
                let _: EmptyBody? = try? await sealedCall("DELETE", WirePath.session, body: EmptyBody?.none)
            } else {
                drawToken()
            }
            state.withLock { $0.session = nil }
        }
        for attempt in 0..<3 {
            do {
                return try await exchange()
            } catch let error as KMSClientError where error.code == ErrorCode.tokenInUse.rawValue && !fixedToken {
                guard attempt < 2 else { throw error }
                drawToken()
            } catch let ended as PendingSessionEnded {
                guard attempt < 2 else { throw ended.refusal }
                // A copy forwarded by someone else may have used the pending session (a review): a drawn
                // token is drawn again, so such a session never holds the next one.
                if !fixedToken { drawToken() }
            } catch KMSClientError.outcomeUnknown(let what) {
                // The exchange's first send may have made a session we never heard of (`exchange` has asked
                // the server to end it); the next exchange draws a new token unless it is fixed.
                guard attempt < 2 else { throw KMSClientError.outcomeUnknown(what) }
                if !fixedToken { drawToken() }
            }
        }
        throw KMSClientError.protocolViolation("unreachable: key-exchange retries ended")
    }

    /// Trust on first use: without a pin (and not `insecureTrustAnyServer`), the first key accepted when
    /// offered, or else proved by a confirmed exchange, is the only key this client meets from then on.
    private func holdFirstKey(_ fingerprint: String) {
        guard configuration.fingerprint == nil, !configuration.insecureTrustAnyServer else { return }
        state.withLock { if $0.metKey == nil { $0.metKey = fingerprint } }
    }

    /// init, pin check, key exchange, seq-0 confirmation with the current token.
    private func exchange() async throws -> SessionInfo {
        let initResponse = try await transport.send(
            TransportRequest(method: "GET", target: WirePath.sessionInit, headers: [], body: nil))
        guard initResponse.status == 200 else { throw plainError(initResponse) }
        let started: SessionInitResponse
        do {
            started = try WireJSON.decode(SessionInitResponse.self, from: initResponse.body)
        } catch {
            throw KMSClientError.protocolViolation("\(WirePath.sessionInit) did not answer the documented JSON")
        }
        // A key that cannot be read is the server's fault, said as one (a review: the seal's own error
        // reached the CLI as "no answer", a failure a script retries).
        let actual: String
        do {
            actual = try ClientSeal.fingerprint(publicKeyPEM: started.publicKey)
        } catch {
            throw KMSClientError.protocolViolation(
                "\(WirePath.sessionInit) answered a public key that is not one: \(error)")
        }
        if let pinned = configuration.fingerprint, !Fingerprint.matches(pinned, actual) {
            throw KMSClientError.fingerprintMismatch(expected: pinned, actual: actual)
        }
        // Trust on first use pins for the client's life: a hook that only remembers the key (the doc's own
        // advice) let a later exchange meet any key, and one forged plain `unknown_session` on the path
        // is enough to start a later exchange (a review of the library). The hooks are not asked about a
        // key other than the one met.
        if let met = state.withLock({ $0.metKey }), !Fingerprint.matches(met, actual) {
            throw KMSClientError.fingerprintMismatch(expected: met, actual: actual)
        }
        if let offered = configuration.serverKeyOffered {
            try await offered(actual)
            // Accepted when offered is met from then on, on every path that retries or makes a later
            // session (a forged `unknown_session` or `token_in_use` refusing this exchange, a lost answer,
            // a later call): another key must not be offered in its place (a review found the hold on
            // one retry path only).
            holdFirstKey(actual)
        }
        // protocol-v1 section 2 fixes the scheme; a server that names another, or a fingerprint that is not
        // its key's, is not one this client knows how to talk to (and the wrap below would be RSA-OAEP-256
        // whatever it said). Judged after the key is (a review): a key other than the pinned or remembered
        // one is reported as such, whatever else its server says.
        guard started.algorithm == SessionInitResponse.keyExchangeAlgorithm else {
            throw KMSClientError.protocolViolation(
                "\(WirePath.sessionInit) offered the key-exchange algorithm '\(Self.printable(started.algorithm))', "
                    + "not RSA-OAEP-256")
        }
        guard Fingerprint.matches(started.fingerprint, actual) else {
            throw KMSClientError.protocolViolation(
                "\(WirePath.sessionInit) named a fingerprint that is not its public key's (\(actual))")
        }
        let key = SymmetricKey(size: .bits256)
        let wrapped = try ClientSeal.wrapSessionKey(key, publicKeyPEM: started.publicKey)
        let token = state.withLock { $0.token }
        var request = KeyExchangeRequest(sessionId: started.sessionId, wrappedKey: wrapped)
        if let clientKey = configuration.clientKey {
            // identity-v1 section 2: sign the binding of session, key, token and server.
            let transcript = ClientAuth.transcript(
                sessionId: started.sessionId, wrappedKey: Base64.decodeStrict(wrapped) ?? Data(), token: token,
                serverFingerprint: actual)
            request.clientKey = ClientAuth.fingerprint(rawPublicKey: clientKey.publicKey.rawRepresentation)
            request.signature = Base64.encode(try ClientAuth.sign(transcript, with: clientKey))
        }
        let exchange: TransportResponse
        // The server starts the session's lifetimes when it takes the exchange: counted from before the send,
        // not from after the answer and the `serverKeyConfirmed` hook (which may wait seconds on a lock; a
        // review: the client then took a session for live past the server's end of it).
        let sentAt = ContinuousClock.now
        do {
            exchange = try await transport.send(
                TransportRequest(
                    method: "POST", target: WirePath.keyExchange,
                    headers: [(EnvelopePlacement.tokenHeader, token), ("Content-Type", "application/json")],
                    body: try WireJSON.encode(request)))
        } catch let never as TransportNeverSent {
            throw never
        } catch {
            // It may have reached the server and made a session that holds this token (a fixed one
            // would then be refused `token_in_use` until it expired): ended, best effort (a review), in
            // the background, so a server that stopped answering does not hold the caller for a second
            // timeout.
            let sessionId = started.sessionId
            Task { await self.endUnconfirmed(sessionId: sessionId, key: key, token: token) }
            throw error
        }
        guard exchange.status == 200 else {
            let error = plainError(exchange)
            guard exchange.resent, error.code == ErrorCode.unknownSession.rawValue else {
                // The pending session ended before its exchange: a person asked about the key took longer
                // than the server's init lifetime to answer (a review), or the server restarted. Nothing
                // took effect, so `establish` starts again (the key, accepted, is not asked about again).
                if error.code == ErrorCode.unknownSession.rawValue { throw PendingSessionEnded(refusal: error) }
                throw error
            }
            await endUnconfirmed(sessionId: started.sessionId, key: key, token: token)
            throw KMSClientError.outcomeUnknown(
                "the connection closed before the key exchange was answered, and its resend found the pending "
                    + "session used (or expired): the first send may have made a session, which holds this "
                    + "token until it ends")
        }
        let confirmation: KeyExchangeResponse
        do {
            let inner = try ClientSeal.openResponse(
                exchange.body, sessionId: started.sessionId, expectedSeq: 0, status: 200, key: key)
            confirmation = try WireJSON.decode(KeyExchangeResponse.self, from: inner)
        } catch {
            throw KMSClientError.protocolViolation("the key-exchange confirmation did not open: \(error)")
        }
        guard confirmation.sessionId == started.sessionId else {
            throw KMSClientError.protocolViolation("the confirmation names another session")
        }
        if let confirmed = configuration.serverKeyConfirmed {
            do {
                try await confirmed(actual)
            } catch {
                await endUnconfirmed(sessionId: started.sessionId, key: key, token: token)
                throw error
            }
        }
        holdFirstKey(actual)
        let now = sentAt
        let ttl = Duration.milliseconds(confirmation.ttlMs)
        // No call is in flight while a session is made (the gate): the new one's seqs start at 1.
        sequence.reset()
        let absolute = now + .milliseconds(confirmation.maxLifetimeMs) - .seconds(1)
        state.withLock { state in
            state.generation += 1
            state.session = Session(
                id: started.sessionId, key: key, token: token, expiresAt: confirmation.expiresAt,
                generation: state.generation, localExpiry: min(now + ttl - .seconds(1), absolute),
                absoluteExpiry: absolute, ttl: ttl, sliding: confirmation.sliding)
        }
        if let interval = configuration.rotateInterval, rotation.withLock({ $0 == nil }) {
            startTokenRotation(every: interval)
        }
        return SessionInfo(
            sessionId: started.sessionId, fingerprint: actual, expiresAt: confirmation.expiresAt,
            ttlMs: confirmation.ttlMs, sliding: confirmation.sliding)
    }

    /// Ends, best effort, a session this client will not use: one whose key
    /// exchange took effect but whose confirmation never came (its resend was
    /// refused), or one whose server key `serverKeyConfirmed` refused. It
    /// would otherwise hold its token, and a place among the server's
    /// sessions, until it expires. Its first sealed request is seq 1.
    private func endUnconfirmed(sessionId: String, key: SymmetricKey, token: String) async {
        guard
            let request = try? Self.sealed(
                Data(), method: "DELETE", target: WirePath.session, sessionId: sessionId, seq: 1, key: key,
                token: token)
        else { return }
        _ = try? await transport.send(request)
    }
}

/// A key exchange refused `unknown_session` on its first send: its pending
/// session had ended, so nothing took effect and a new one may be started.
struct PendingSessionEnded: Error {
    let refusal: KMSClientError
}
