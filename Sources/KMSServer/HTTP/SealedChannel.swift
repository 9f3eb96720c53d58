import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import Logging

/// The sealed channel of protocol v1 sections 4 and 5, in one place.
///
/// `route` turns a handler that sees only a validated inner request and the
/// authenticated session into a Hummingbird route. Everything before the
/// envelope authenticates is answered in plain JSON (thrown to the edge);
/// everything after — replays, invalid inner fields, handler errors,
/// successes — is answered sealed under the session key, echoing the seq.
///
/// This is a route wrapper rather than a middleware plus child context (as
/// architecture.md suggests) so that the handler's typed result is sealed
/// directly, without encoding a response body and reading it back.
struct SealedChannel: Sendable {
    let sessions: SessionManager
    let maxBodyBytes: Int
    let logger: Logger

    /// What a sealed handler sees besides its inner request.
    struct Call: Sendable {
        let opened: OpenedRequest
        let request: Request
        let context: KMSRequestContext
    }

    typealias Handler<Inner: StrictDecodable, Output: Encodable & Sendable> =
        @Sendable (Inner, Call) async throws(KMSError) -> Output

    /// Sealed routes whose handler answers with the status of its own choosing.
    func route<Inner: StrictDecodable, Output: Encodable & Sendable>(
        _ inner: Inner.Type, _ handler: @escaping Handler<Inner, Output>
    ) -> @Sendable (Request, KMSRequestContext) async throws -> Response {
        { request, context in
            let carrier: EnvelopeCarrier
            if request.method == .post {
                carrier = .body(try await RequestBodyReader.read(request, limit: maxBodyBytes))
            } else {
                carrier = .header(request.headers[HeaderNames.envelope])
            }
            let (session, envelope, plaintext) = try await sessions.authenticate(
                token: request.headers[HeaderNames.clientToken], method: request.method.rawValue,
                target: request.uri.description, carrier: carrier)
            var opened: OpenedRequest?
            do {
                let admitted = try await sessions.admit(
                    session: session, envelope: envelope, plaintext: plaintext, carrier: carrier)
                opened = admitted
                let input: Inner
                do throws(RequestFieldError) {
                    // GET and DELETE seal the empty string (checked in admit); POST must seal JSON.
                    let isBodyless = request.method != .post
                    input = try Inner.parse(isBodyless ? Data("{}".utf8) : admitted.plaintext)
                } catch {
                    throw KMSError.invalidRequest(error)
                }
                let output = try await handler(input, Call(opened: admitted, request: request, context: context))
                let body: Data
                do {
                    body = try WireJSON.encode(output)
                } catch {
                    throw KMSError.internal("cannot encode a response")
                }
                return try sealed(body, status: .ok, headers: [:], opened: admitted)
            } catch {
                let failure = KMSError.from(error)
                if failure.needsOperatorAttention {
                    logger.error(
                        "sealed request failed",
                        metadata: ["requestId": "\(context.requestId)", "detail": "\(failure.detail ?? "")"])
                }
                let target =
                    opened
                    ?? OpenedRequest(
                        sessionId: session.id, tokenHash: session.tokenHash, key: session.key, seq: envelope.seq,
                        plaintext: Data(),
                        expiresAt: session.expiresAt)
                return try sealed(
                    failure.body(requestId: context.requestId), status: failure.code.httpStatus,
                    headers: failure.headers, opened: target)
            }
        }
    }

    private func sealed(
        _ body: Data, status: HTTPResponse.Status, headers: HTTPFields, opened: OpenedRequest
    ) throws(KMSError) -> Response {
        let sealed = try sessions.sealResponse(body, for: opened, status: status.code)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(data: sealed)))
    }
}
