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
                    "Returns a pending session id and the server's RSA-4096 public key with its fingerprint. Pin the fingerprint; complete with \(WirePath.keyExchange) within 60 s.",
                errors: [.tooManyPendingSessions, .serverBusy], response: SessionInitResponse.self)
        ) { _, context in
            let response = try await sessions.startSession(clientAddress: context.clientAddress?.description ?? "")
            return try JSONResponse.ok(response)
        }
        routes.keyExchange(
            .post, WirePath.keyExchange,
            doc: RouteDoc(
                tag: "session", summary: "Exchange the session key",
                description:
                    "Send 32 random bytes wrapped with RSA-OAEP-256 and header X-Client-Token. The 200 body is a sealed response with seq 0 whose inner JSON is KeyExchangeResponse: opening it proves the server holds your key.",
                errors: [
                    .invalidToken, .badRequest, .invalidRequest, .unknownSession, .tokenInUse, .keyExchangeFailed,
                    .rateLimited, .serverBusy,
                ],
                request: KeyExchangeRequest.self, response: KeyExchangeResponse.self)
        ) { request, context in
            // Before anything else costs the server: a flood from one address is cut here.
            try keyExchanges.admit(
                context.clientAddress?.description ?? "unknown", now: Date(), contended: sessions.rsa.isBusy)
            let token = request.headers[HeaderNames.clientToken]
            let body = try await RequestBodyReader.read(request, limit: maxBodyBytes)
            let client = ("client", context.clientAddress?.description ?? "unknown")
            do throws(KMSError) {
                let result = try await sessions.exchangeKey(token: token, body: body)
                await audit.note(
                    AuditEvent("session.key-exchange", [client, ("session", AuditEvent.sessionHash(result.sessionId))]))
                return JSONResponse.raw(result.sealed)
            } catch {
                await audit.note(
                    AuditEvent("session.key-exchange", outcome: "failure", [client, ("code", error.code.rawValue)]))
                throw error
            }
        }
        routes.sealed(
            .post, WirePath.rotateToken, RotateTokenRequest.self,
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
            .delete, WirePath.session, EmptyBody.self,
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
