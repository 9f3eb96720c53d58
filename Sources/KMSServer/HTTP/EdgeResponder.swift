import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import Logging

/// The one responder of the server: every request and every
/// response passes here, 404s and refusals included.
///
/// In order: request id; client address and allowlist (`403`); a web page's
/// request (`403 browser_request_refused`, `WebPageRequests`); route match
/// in the route table (`404`/`405` before any token is looked at); declared
/// body size (`413`); the route's handler; errors to responses (the one
/// place: plain, or sealed when the error came after authentication);
/// security headers; one log line and metrics.
struct EdgeResponder: HTTPResponder {
    typealias Context = KMSRequestContext

    let routes: RouteTable
    let resolver: ClientAddressResolver
    let maxBodyBytes: Int
    let securityHeaders: SecurityHeaders
    let metrics: RequestMetrics
    let logger: Logger
    let audit: Auditor
    /// Refusals are logged a few lines a second at most (the request line below too).
    let refusalLog = RefusalLogSampler()
    /// Plain `4xx` answers to allowlisted clients (no token, an unknown session, no such route), thinned
    /// apart from the address refusals so that neither crowds the other's lines out.
    let plainRefusalLog = RefusalLogSampler()
    /// The request lines of `429` and `5xx` answers, and the `request failed` line that goes with a failure
    /// the operator must see, thinned (`ResponseLogThinning`): the metrics count every answer.
    let logThinning = ResponseLogThinning()
    /// The metric label of a path that matched no route.
    static let unmatched = "unmatched"

    func respond(to request: Request, context: KMSRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        context.requestId = Self.newRequestId()
        var routeLabel = Self.unmatched
        var response: Response
        var logRequest = true
        var failure: KMSError?
        // A plain refusal (one not sealed: before a session was proved) of an allowlisted client.
        var plainRefusal = false
        let forwardedFor = request.headers[values: HeaderNames.forwardedFor]
        // Not `/metrics`: a scraper on the proxy's host, and `kms doctor` reading this figure, ask directly, not
        // through the proxy (a review: doctor's own reads made the warning it looks for, every run).
        if forwardedFor.isEmpty, let peer = context.peer, resolver.isTrustedProxy(peer),
            request.uri.path != WirePath.metrics
        {
            metrics.recordMissingForwardedFor()
        }
        switch resolver.resolve(peer: context.peer, forwardedFor: forwardedFor) {
        case .refused(let address, let reason):
            let shown = address?.description ?? "unknown"
            let host = address?.perHostKey ?? "unknown"
            // Thinned by host (an IPv6 /64 rotating its addresses took every line: a review), named in full.
            let sampled = refusalLog.admit(host, now: Date())
            logRequest = sampled != nil
            if let suppressed = sampled {
                logger.warning(
                    "refused client address",
                    metadata: [
                        "requestId": "\(context.requestId)", "address": "\(shown)",
                        "peer": "\(context.peer?.description ?? "unknown")", "reason": "\(reason)",
                        "suppressedSinceLast": "\(suppressed)",
                    ])
            }
            audit.refused(address: shown, host: host, at: Date())
            response =
                KMSError(
                    .addressNotAllowed, "this client address is not on the server's allowlist (KMS_WHITELIST)"
                ).response(requestId: context.requestId).response
        case .allowed(let address):
            context.clientAddress = address
            do {
                if let refusal = WebPageRequests.refusal(request) { throw refusal }
                let (route, parameters) = try match(request, label: &routeLabel)
                try checkDeclaredLength(request)
                for parameter in parameters {
                    context.coreContext.parameters.append(key: parameter.name, value: parameter.value)
                }
                response = try await route.handler(request, context)
            } catch {
                let (error, sealing) = KMSError.from(error)
                (response, failure) = error.response(requestId: context.requestId, sealedFor: sealing)
                plainRefusal = sealing == nil
            }
        }
        securityHeaders.apply(to: &response.headers)
        response.headers[HeaderNames.requestId] = context.requestId
        let elapsed = ContinuousClock.now - start
        metrics.record(
            route: routeLabel, method: request.method.rawValue, status: response.status.code, elapsed: elapsed)
        guard logRequest else { return response }
        let attention = failure.flatMap { $0.needsOperatorAttention ? $0 : nil }
        let status = Int(response.status.code)
        // A plain 4xx (no token, an unknown session, a path or method that is none, a body too large) is
        // thinned by host as refusals are, as the AWS door thins its refusals before authentication (an
        // observability review: an allowlisted client without a key wrote 400 KB of `401` lines a second).
        // By host (an IPv6 /64, as the limits count one), so one host's addresses share one budget.
        let left =
            plainRefusal && (400..<500).contains(status) && status != 429
            ? plainRefusalLog.admit(context.clientAddress?.perHostKey ?? "unknown", now: Date())
            : logThinning.admit(
                status: status,
                attention: attention.map { ResponseLogThinning.kind(code: $0.code.rawValue, detail: $0.detail) },
                address: context.clientAddress?.description ?? "unknown", now: Date())
        guard let suppressed = left else { return response }
        if let attention {
            logger.error(
                "request failed",
                metadata: [
                    "requestId": "\(context.requestId)", "code": "\(attention.code.rawValue)",
                    "detail": "\(attention.detail ?? "")", "suppressedSinceLast": "\(suppressed)",
                ])
        }
        // The method as the client wrote it, capped as audit fields are (a request head may be 80 KB, and
        // a path of quotes doubled in the log: a probe wrote twice what it sent); the path with what
        // does not look like a name hidden (`LoggedPath`: a secret typed in the wrong place).
        logger.info(
            "request",
            metadata: [
                "requestId": "\(context.requestId)", "client": "\(context.clientAddress?.description ?? "refused")",
                "method": "\(AuditEvent.capped(request.method.rawValue))",
                "path": "\(loggedPath(request, routeLabel))",
                "status": "\(response.status.code)",
                "durationMs":
                    "\(String(format: "%.3f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000))",
                "suppressedSinceLast": "\(suppressed)",
            ])
        return response
    }

    /// The path for the request log (`LoggedPath`), capped as audit fields are. Called inside the log
    /// call's metadata, so a server that does not log requests (`KMS_LOG_LEVEL` above `info`) never builds it.
    private func loggedPath(_ request: Request, _ routeLabel: String) -> String {
        AuditEvent.capped(
            LoggedPath.of(
                request.uri.path, template: routeLabel == Self.unmatched ? nil : routeLabel, words: routes.words))
    }

    /// The route `request` names; `label` becomes its template when the path matched one (a `405`
    /// is counted under the route it reached, not with the paths that match none).
    private func match(
        _ request: Request, label: inout String
    ) throws(KMSError) -> (RouteTable.Route, [(name: Substring, value: Substring)]) {
        switch routes.match(method: request.method, path: request.uri.path) {
        case .found(let route, let parameters):
            label = route.path
            return (route, parameters)
        case .wrongMethod(let path, let allowed):
            label = path
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            throw KMSError(.methodNotAllowed, "this route answers \(list) only", detail: list)
        case .none:
            throw KMSError(.notFound, "no such route; see /docs for the API")
        }
    }

    private func checkDeclaredLength(_ request: Request) throws(KMSError) {
        if RequestBodyReader.declaresMoreThan(maxBodyBytes, request.headers[.contentLength]) {
            throw KMSError.payloadTooLarge(limit: maxBodyBytes)
        }
    }
}

extension KMSError {
    static func payloadTooLarge(limit: Int) -> KMSError {
        KMSError(.payloadTooLarge, "the request body is larger than \(limit) bytes (KMS_MAX_BODY_BYTES)")
    }
}

extension EdgeResponder {
    /// A request id: 12 random bytes, base64url.
    static func newRequestId() -> String { Base64.encodeURL(SymmetricKeyBytes.random(count: 12)) }

    /// The native door's answer to bytes that are not HTTP/1.1 (`ConnectionGuard`):
    /// a plain `400 bad_request` like any refusal before routing.
    static func malformedAnswer(_ securityHeaders: SecurityHeaders) -> ConnectionGuard.MalformedAnswer {
        {
            let requestId = newRequestId()
            let error = KMSError(
                .badRequest,
                "the request is not HTTP/1.1 this server reads: a malformed request line or header, "
                    + "an unknown method, no Host or two, a target naming another host than Host, a transfer coding other than chunked, or headers past the size limits"
            )
            var fields = error.headers
            securityHeaders.apply(to: &fields)
            fields[HeaderNames.requestId] = requestId
            return (fields, String(decoding: error.body(requestId: requestId), as: UTF8.self))
        }
    }
}
