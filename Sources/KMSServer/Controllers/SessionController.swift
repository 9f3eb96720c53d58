import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/session/*`: init and key exchange (plain), token rotation and end (sealed).
struct SessionController: Sendable {
    let sessions: SessionManager
    let channel: SealedChannel
    let maxBodyBytes: Int

    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(.get, "/session/init", sealed: false)
        router.get("/session/init") { _, context in
            let response = try await sessions.startSession(clientAddress: context.clientAddress?.description ?? "")
            return try JSONResponse.ok(response)
        }
        table.add(.post, "/session/key-exchange", sealed: false)
        router.post("/session/key-exchange") { request, _ in
            let token = request.headers[HeaderNames.clientToken]
            let body = try await RequestBodyReader.read(request, limit: maxBodyBytes)
            let result = try await sessions.exchangeKey(token: token, body: body)
            return JSONResponse.raw(result.sealed)
        }
        table.add(.post, "/session/rotate-token", sealed: true)
        router.post(
            "/session/rotate-token",
            use: channel.route(RotateTokenRequest.self) { input, call throws(KMSError) in
                try await sessions.rotateToken(call.opened, body: input)
            })
        table.add(.delete, "/session", sealed: true)
        router.delete(
            "/session",
            use: channel.route(EmptyBody.self) { _, call throws(KMSError) in
                try await sessions.endSession(call.opened)
                return EmptyBody()
            })
    }
}
