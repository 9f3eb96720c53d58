import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/session/*`: init and key exchange (plain), token rotation and end (sealed).
struct SessionController: Sendable {
    let sessions: SessionManager
    let maxBodyBytes: Int
    let audit: Auditor
    let keyExchanges: KeyExchangeLimiter

    func register(on routes: inout RouteBuilder) {
        routes.plain(
            .get, WirePath.sessionInit,
            doc: RouteDoc(
                tag: "session", summary: "Start a session",
                description:
                    "Returns a pending session id and the server's RSA-4096 public key with its fingerprint. Pin the fingerprint; complete with \(WirePath.keyExchange) before the pending session expires (KMS_SESSION_INIT_TTL_MS, 60 s by default).",
                errors: [.tooManyPendingSessions, .serverBusy], response: SessionInitResponse.self)
        ) { _, context in
            // Counted per host (an IPv6 /64; one address in Tailscale's range outside its 4via6 /64), as connections are: a host cannot take the whole
            // pending bound by using many addresses of its /64 (a review).
            let response = try await sessions.startSession(clientAddress: context.clientAddress?.perHostKey ?? "")
            return try JSONResponse.ok(response)
        }
        routes.keyExchange(
            .post, WirePath.keyExchange,
            doc: RouteDoc(
                tag: "session", summary: "Exchange the session key",
                description:
                    "Send 32 random bytes wrapped with RSA-OAEP-256 and header X-Client-Token. The 200 body is a sealed response with seq 0 whose inner JSON is KeyExchangeResponse: opening it proves the server holds your key. 429 rate_limited: this address's key-exchange rate while the RSA threads are busy, or an enrolled client already holding KMS_SESSIONS_PER_CLIENT live sessions (end one with DELETE /session).",
                errors: [
                    .invalidToken, .badRequest, .invalidRequest, .unknownSession, .tokenInUse, .keyExchangeFailed,
                    .clientNotAuthenticated, .rateLimited, .serverBusy,
                ],
                request: KeyExchangeRequest.self, response: KeyExchangeResponse.self)
        ) { request, context in
            // Before anything else costs the server: a flood from one address is cut here.
            let host = context.clientAddress?.perHostKey ?? "unknown"
            try keyExchanges.admit(host, now: Date(), contended: sessions.rsa.isBusy)
            let token = request.headers[HeaderNames.clientToken]
            let body = try await RequestBodyReader.read(
                request, limit: maxBodyBytes, host: host,
                malformed: KMSError(.badRequest, RequestBodyReader.brokenBody))
            let client = ("client", context.clientAddress?.description ?? "unknown")
            do throws(KMSError) {
                let result = try await sessions.exchangeKey(token: token, body: body)
                var fields = [client, ("session", AuditEvent.sessionHash(result.sessionId))]
                if let enrolled = result.client {
                    fields += [("clientId", enrolled.clientId), ("clientName", enrolled.name)]
                }
                await audit.note(AuditEvent("session.key-exchange", fields))
                return JSONResponse.raw(result.sealed)
            } catch {
                var fields = [client, ("code", error.code.rawValue)]
                // identity-v1 section 7: a failed exchange records the clientKey as sent.
                // As sent when it has the `SHA256:` form or is short; else by its length, as other client text.
                let sent = KeyExchangeRequest.sentClientKey(body).map { text in
                    ClientAuth.isWellFormedClientKey(text) || Echo.mayShow(text) ? text : Auditor.notShown(text)
                }
                if let sent { fields.append(("clientKey", sent)) }
                await audit.keyExchangeFailed(
                    fields, host: host, code: error.code, clientKey: sent, at: sessions.clock.now())
                throw error
            }
        }
        routes.sealed(
            .post, WirePath.rotateToken, RotateTokenRequest.self, permission: .session,
            doc: RouteDoc(
                tag: "session", summary: "Rotate the token",
                description:
                    "Moves the session to a new token (server-issued for `{}`); the old token stops at once. Rate-limited per session.",
                errors: [.tokenInUse, .rateLimited])
        ) { input, call throws(KMSError) in
            let rotated = try await sessions.rotateToken(call.opened, body: input)
            await audit.note(AuditEvent("session.rotate-token", Auditor.who(call)))
            return rotated
        }
        routes.sealed(
            .get, WirePath.session, EmptyBody.self, permission: .session,
            doc: RouteDoc(
                tag: "session", summary: "Describe the session",
                description:
                    "The session's id and expiry and, with client identity, its client as read now: clientId, name, fingerprint and grants.",
                errors: [])
        ) { _, call throws(KMSError) in
            SessionInfoResponse(
                sessionId: call.opened.sessionId, expiresAt: Timestamp.format(call.opened.expiresAt),
                client: call.opened.client.map { client in
                    SessionInfoResponse.Client(
                        clientId: client.clientId, name: client.name, fingerprint: client.fingerprint,
                        grants: client.grants.map {
                            GrantBody(keys: $0.keys.map(\.text), allow: $0.allow.map(\.rawValue))
                        })
                })
        }
        routes.sealed(
            .delete, WirePath.session, EmptyBody.self, permission: .session,
            doc: RouteDoc(
                tag: "session", summary: "End the session",
                description: "Destroys the session; its token and key stop working at once. Answers a sealed `{}`.",
                errors: [])
        ) { _, call throws(KMSError) in
            try await sessions.endSession(call.opened)
            await audit.note(AuditEvent("session.delete", Auditor.who(call)))
            return EmptyBody()
        }
    }
}
