import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import Logging
import NIOCore

/// The AWS-compatible door's one responder (aws-kms-v1 section 2), in the
/// section's order: address (`403 AccessDeniedException`), size (`413`),
/// path (`404 UnknownOperationException`), authentication (SigV4), target,
/// body, grant, operation. Every answer carries `x-amzn-RequestId`.
struct AWSResponder: HTTPResponder {
    typealias Context = KMSRequestContext

    let resolver: ClientAddressResolver
    let maxBodyBytes: Int
    let authenticator: AWSAuthenticator
    let operations: AWSOperations
    /// Counted as the native door's answers are, under the route `aws:OPERATION` (an observability review:
    /// the door's answers were not counted at all). Operations are a bounded set: the table's, the
    /// unsupported ones, `unknown`, and `-` for an answer before the target was read.
    let metrics: RequestMetrics
    let logger: Logger
    let audit: Auditor
    /// Allowlist refusals' lines, and apart from them (so that neither crowds the other out, as on the
    /// native door) an allowlisted client's refusals before the target: both thinned by host.
    let refusalLog = RefusalLogSampler()
    let plainRefusalLog = RefusalLogSampler()
    /// `429` and `5xx` answers, thinned as the native door's are (`ResponseLogThinning`).
    let logThinning = ResponseLogThinning()
    static let contentType = "application/x-amz-json-1.1"
    static let errorType = HTTPField.Name("x-amzn-ErrorType") ?? .contentType
    static let requestIdHeader = HTTPField.Name("x-amzn-RequestId") ?? .contentType
    static let target = HTTPField.Name("X-Amz-Target") ?? .contentType

    func respond(to request: Request, context: KMSRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let requestId = UUID().uuidString.lowercased()
        var operation = "-"
        // The client as the allowlist rule reads it (behind a trusted proxy, `X-Forwarded-For`'s), as the
        // audit log and the native door name it (set by `handle` before anything can fail).
        var client = Client()
        var response: Response
        var failure: AWSFault?
        let forwardedFor = request.headers[values: HeaderNames.forwardedFor]
        do throws(AWSFault) {
            let (name, output) = try await handle(
                request, context: context, requestId: requestId, forwardedFor: forwardedFor, operation: &operation,
                client: &client)
            operation = name
            response = Self.response(.ok, output.serialized())
        } catch {
            response = Self.response(error.status, error.body)
            response.headers[Self.errorType] = error.code
            failure = error
        }
        if Self.mediaType(request.headers[.contentType]) == "application/json" {
            response.headers[.contentType] = "application/json"
        }
        response.headers[Self.requestIdHeader] = requestId
        let status = response.status.code
        if forwardedFor.isEmpty, let peer = context.peer, resolver.isTrustedProxy(peer) {
            metrics.recordMissingForwardedFor()
        }
        metrics.record(
            route: "aws:" + operation, method: request.method.rawValue, status: status,
            elapsed: ContinuousClock.now - start)
        // Refusals before authentication are logged a few lines a second at most, and so are `429` and
        // `5xx` answers (a full body budget answers every peer that sends a large body before it signs); a
        // line written says how many of its kind were left out (a review: a refusal's said 0). An
        // allowlisted client's refusals are thinned by host (an IPv6 /64), as the native door's plain
        // refusals are, so one host rotating its addresses shares one budget (the final read).
        let left: Int?
        if [400, 403, 404, 413].contains(status), operation == "-" {
            left = (client.refusal == nil ? plainRefusalLog : refusalLog).admit(client.host, now: Date())
        } else {
            // A failure with a cause for the operator's log (a storage outage) is thinned by its kind.
            let attention = failure.flatMap { $0.needsOperatorAttention ? $0 : nil }
            left = logThinning.admit(
                status: Int(status),
                attention: attention.map { ResponseLogThinning.kind(code: $0.code, detail: $0.detail) },
                address: client.address, now: Date())
        }
        guard let left else { return response }
        let suppressed = "\(left)"
        var metadata: Logger.Metadata = [
            "requestId": "\(requestId)", "operation": "\(AuditEvent.capped(operation))",
            "status": "\(status)", "client": "\(client.address)", "suppressedSinceLast": "\(suppressed)",
        ]
        // Why an address was refused, as the native door's line says (a malformed `X-Forwarded-For` names
        // the proxy, which is on the allowlist: without the reason the line read as a contradiction).
        if let reason = client.refusal { metadata["reason"] = "\(reason)" }
        if let failure, failure.needsOperatorAttention {
            logger.error(
                "AWS door could not answer",
                metadata: [
                    "requestId": "\(requestId)", "operation": "\(AuditEvent.capped(operation))",
                    "code": "\(failure.code)", "detail": "\(failure.detail ?? "")",
                    "suppressedSinceLast": "\(suppressed)",
                ])
        }
        logger.info("aws request", metadata: metadata)
        return response
    }

    /// Whether a `Content-Type` names one of section 2's media types; parameters
    /// (`; charset=utf-8`) are ignored, as Smithy's awsJson1_1 protocol tests ask.
    static func isJSON(_ contentType: String?) -> Bool {
        [Self.contentType, "application/json"].contains(mediaType(contentType))
    }

    /// A `Content-Type`'s media type, lowercased, without parameters; the
    /// answer mirrors `application/json` in any case (section 2: same content type).
    /// ASCII only, as HTTP has it: Unicode white space (U+3000) was trimmed and U+037E split as `;`.
    static func mediaType(_ contentType: String?) -> String? {
        guard let contentType, contentType.isAllASCII else { return nil }
        let name = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return name.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// The answer to bytes that are not HTTP/1.1 (`ConnectionGuard`), shaped as this door's errors.
    static let malformedAnswer: ConnectionGuard.MalformedAnswer = {
        let fault = AWSFault(
            "SerializationException",
            "The request is not HTTP/1.1 this door reads: a malformed request line or header, no Host or two, a target naming another host than Host, a transfer coding other than chunked, or headers past the size limits."
        )
        let fields: HTTPFields = [
            .contentType: contentType, errorType: fault.code, requestIdHeader: UUID().uuidString.lowercased(),
        ]
        return (fields, fault.body)
    }

    static func response(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: contentType],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Who the log names (`address`), what its refusal lines are thinned by (`host`), and why the
    /// allowlist refused it.
    private struct Client {
        var address = "unknown"
        var host = "unknown"
        var refusal: String?
    }

    private func handle(
        _ request: Request, context: KMSRequestContext, requestId: String, forwardedFor: [String],
        operation: inout String, client: inout Client
    ) async throws(AWSFault) -> (String, JSONValue) {
        // Address.
        let address: String
        let host: String
        switch resolver.resolve(peer: context.peer, forwardedFor: forwardedFor) {
        case .refused(let refused, let reason):
            // Named by its address, thinned by its host (an IPv6 /64 rotating its addresses: a review).
            client.address = refused?.description ?? "unknown"
            client.host = refused?.perHostKey ?? "unknown"
            client.refusal = reason
            audit.refused(address: client.address, host: client.host, at: Date())
            throw AWSFault(
                "AccessDeniedException", "This client address is not on the server's allowlist (KMS_WHITELIST).",
                status: .forbidden)
        case .allowed(let allowed):
            address = allowed.description
            // The client's host, not a trusted proxy's, as the native door counts it (a review).
            host = allowed.perHostKey
            client = Client(address: address, host: host)
        }
        // Size.
        let tooLarge = AWSFault(
            "ValidationException", "The request body is larger than \(maxBodyBytes) bytes.", status: .contentTooLarge)
        if RequestBodyReader.declaresMoreThan(maxBodyBytes, request.headers[.contentLength]) { throw tooLarge }
        let body: Data
        do {
            body = try await RequestBodyReader.read(
                request, limit: maxBodyBytes, host: host,
                malformed: KMSError(.badRequest, RequestBodyReader.brokenBody))
        } catch {
            if error.code == .payloadTooLarge { throw tooLarge }
            // Cut off by shutdown: a 503 the SDKs retry, as the native door answers it, not the client's fault.
            if error.code == .serverBusy { throw AWSFault.from(error) }
            throw AWSFault(
                "SerializationException", "The request body cannot be read: malformed chunked encoding, or cut short.")
        }
        // Path.
        guard request.method == .post, request.uri.path == "/", request.uri.query == nil else {
            throw AWSFault(
                "UnknownOperationException", "This door answers POST / with an X-Amz-Target.", status: .notFound)
        }
        // Authentication.
        var headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        if let authority = request.head.authority { headers.append((name: "host", value: authority)) }
        let caller: AWSCaller
        do {
            caller = try await authenticator.verify(headers: headers, body: body)
        } catch {
            let claimed = headers.first { $0.name.lowercased() == "authorization" }.flatMap {
                SigV4.Authorization(parsing: $0.value)?.accessKeyId
            }
            audit.authRefused(
                address: address, host: host, code: error.code, accessKeyId: claimed,
                accessKeyFound: error.accessKeyFound, at: Date())
            throw error
        }
        // Target.
        let target = request.headers[Self.target] ?? ""
        // ASCII only, so that the operation looked up below is the bytes sent: `String`'s `==` would find
        // CreateKey under a Kelvin sign for its K, past a proxy that filters targets by their bytes (a
        // review).
        guard target.isAllASCII, let name = target.bytesAfter(prefix: "TrentService.") else {
            throw AWSFault("UnknownOperationException", "Unknown X-Amz-Target (TrentService.<Operation>).")
        }
        guard let run = AWSOperations.table[name] else {
            if AWSOperations.unsupported.contains(name) {
                operation = name
                throw AWSFault.unsupported(name)
            }
            // The server's log names an operation only when it is one: the header is the caller's to
            // fill, and a secret pasted there is not logged (a review).
            operation = "unknown"
            throw AWSFault("UnknownOperationException", "Unknown operation \(AWSFault.shown(name)).")
        }
        operation = name
        // Body, grant, operation. The media type is checked first: a body sent as anything else
        // (a form, text) is not what the caller meant to sign, and AWS's own servers refuse it.
        guard Self.isJSON(request.headers[.contentType]) else {
            throw AWSFault(
                "UnsupportedMediaTypeException",
                "Content-Type must be application/x-amz-json-1.1 (or application/json).",
                status: .unsupportedMediaType)
        }
        var input = try AWSInput(body)
        let dryRun = AWSOperations.readOnly.contains(name) ? false : try input.dryRun()
        let call = AWSOperations.Call(caller: caller, address: address, dryRun: dryRun, requestId: requestId)
        return (name, try await run(operations, &input, call))
    }
}
