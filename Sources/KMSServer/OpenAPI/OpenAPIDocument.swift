import HTTPTypes
import KMSProtocol

/// The OpenAPI 3.0 document, generated from the route table and the
/// documented wire types: there is no second copy to drift.
///
/// Sealed routes show the envelope on the wire and name their inner request
/// and response schemas in `x-inner-request` / `x-inner-response`; every
/// error code a route can answer is listed per status in `x-error-codes`.
struct OpenAPIDocument {
    let routes: RouteTable

    /// Every documented type, for `components.schemas` (nested ones included).
    static let types: [any Documented.Type] = [
        Health.self, SessionInitResponse.self, KeyExchangeRequest.self, KeyExchangeResponse.self,
        RotateTokenRequest.self, RotateTokenResponse.self, EmptyBody.self, RandomRequest.self, RandomResponse.self,
        GenerateKeyRequest.self, RotateKeyRequest.self, KeyVersionResponse.self, KeyMetadata.Version.self,
        KeyMetadata.self, KeyListResponse.self, EncryptRequest.self, CiphertextResponse.self, CiphertextRequest.self,
        DecryptResponse.self, DataKeyRequest.self, DataKeyResponse.self, ErrorBody.Detail.self, ErrorBody.self,
        SessionInfoResponse.self, SessionInfoResponse.Client.self, GrantBody.self, AddClientRequest.self,
        SetGrantsRequest.self, ClientBody.self, ClientBody.AccessKey.self, ClientListResponse.self,
        AccessKeyCreated.self, ScheduleDeletionRequest.self, RotationScheduleRequest.self, DescriptionRequest.self,
        TagsRequest.self, CreateAliasRequest.self, MoveAliasRequest.self, AliasBody.self, AliasListResponse.self,
    ]
    typealias Health = HealthController.Health

    /// Errors any route can answer before it runs.
    static let edgeErrors: [ErrorCode] = [.addressNotAllowed, .browserRequestRefused]
    /// Errors of the sealed channel, answered in plain JSON (before authentication).
    static let plainChannelErrors: [ErrorCode] = [
        .invalidToken, .unknownSession, .invalidEnvelope, .authenticationFailed,
    ]
    /// Errors of the sealed channel answered sealed (after authentication).
    static let sealedChannelErrors: [ErrorCode] = [.replayDetected, .invalidRequest, .serverBusy]

    /// What a sealed route answers because of what it is (a review found these missing from the
    /// lists): a session whose client was revoked is refused sealed (`unknown_session`), a route
    /// with a permission can refuse it, and one that changes or computes with keys (not a read)
    /// refuses when its audit entry cannot be written.
    static func impliedErrors(of route: RouteTable.Route) -> [ErrorCode] {
        var implied: [ErrorCode] = [.unknownSession]
        if route.doc.permission != nil {
            implied.append(.permissionDenied)
            if route.method != .get { implied.append(.auditUnavailable) }
        }
        return implied
    }

    /// The codes a route can answer, each marked sealed or plain.
    static func errors(of route: RouteTable.Route) -> [(code: ErrorCode, sealed: Bool)] {
        // The API documents answer web pages' reads (`WebPageRequests`).
        let isDocument = WebPageRequests.isPublicDocument(method: route.method, path: route.path)
        var list = edgeErrors.filter { !(isDocument && $0 == .browserRequestRefused) }.map { ($0, false) }
        // Every method: a declared Content-Length past the limit is refused before the route (a review
        // found it listed for POST only).
        list.append((.payloadTooLarge, false))
        if route.sealed {
            list += plainChannelErrors.map { ($0, false) }
            // A body read cut off by shutdown, or past the body budget, is refused before the envelope is
            // known, so in plain; and on every method, a session store that cannot be read (PostgreSQL down)
            // before the session is known (a review found GET and DELETE without it).
            list.append((.serverBusy, false))
            list += (sealedChannelErrors + Self.impliedErrors(of: route) + route.doc.errors).map { ($0, true) }
        } else {
            list += route.doc.errors.map { ($0, false) }
        }
        var seen = Set<String>()
        return list.filter { seen.insert("\($0.0.rawValue)\($0.1)").inserted }.map { (code: $0.0, sealed: $0.1) }
    }

    var json: JSONValue {
        var paths: [(String, JSONValue)] = []
        var order: [String] = []
        var byPath: [String: [(String, JSONValue)]] = [:]
        for route in routes.routes {
            if byPath[route.path] == nil { order.append(route.path) }
            byPath[route.path, default: []].append((route.method.rawValue.lowercased(), operation(route)))
        }
        for path in order { paths.append((path, .object(byPath[path] ?? []))) }
        var schemas: [(String, JSONValue)] = [(EnvelopeSchema.name, EnvelopeSchema.schema.json)]
        for type in Self.types { schemas.append((type.schemaName, type.schema.json)) }
        return .object([
            ("openapi", .string("3.0.3")),
            (
                "info",
                .object([
                    ("title", .string("Personal KMS")), ("version", .string("1.0.0")),
                    (
                        "description",
                        .string(
                            "Self-hosted key management. Protected routes carry a sealed envelope (AES-256-GCM under a per-session key negotiated by RSA-OAEP-256); their inner JSON is described by x-inner-request (POST; GET and DELETE seal the empty byte string) and x-inner-response. The wire contract is docs/protocol.md."
                        )
                    ),
                ])
            ),
            ("paths", .object(paths)),
            (
                "components",
                .object([
                    ("schemas", .object(schemas)),
                    (
                        "parameters",
                        .object([
                            (
                                "ClientToken",
                                header(
                                    EnvelopePlacement.tokenHeader, pattern: "^[A-Za-z0-9._~-]{32,256}$",
                                    "names the session; only its SHA-256 is kept")
                            ),
                            (
                                "Envelope",
                                header(
                                    EnvelopePlacement.envelopeHeader, pattern: "^[A-Za-z0-9+/]*={0,2}$",
                                    "GET and DELETE: the b64 of the envelope JSON, sealing the empty string")
                            ),
                        ])
                    ),
                ])
            ),
        ])
    }

    private func header(_ name: String, pattern: String, _ description: String) -> JSONValue {
        .object([
            ("name", .string(name)), ("in", .string("header")), ("required", .bool(true)),
            ("description", .string(description)),
            ("schema", .object([("type", .string("string")), ("pattern", .string(pattern))])),
        ])
    }

    private func reference(_ name: String) -> JSONValue {
        .object([("$ref", .string("#/components/schemas/\(name)"))])
    }

    private func operation(_ route: RouteTable.Route) -> JSONValue {
        let doc = route.doc
        var members: [(String, JSONValue)] = [
            ("tags", .array([.string(doc.tag)])), ("summary", .string(doc.summary)),
            (
                "description",
                .string(
                    doc.description
                        + (route.sealed
                            ? (EnvelopePlacement(method: route.method.rawValue) == .body
                                ? " Sealed: see x-inner-request and x-inner-response."
                                : " Sealed: the inner request is the empty byte string; see x-inner-response.")
                            : "")
                        + (route.sealed
                            ? " Permission: \(doc.permission?.rawValue ?? "none, a session suffices")." : ""))
            ),
            ("operationId", .string(operationId(route))),
        ]
        var parameters: [JSONValue] = []
        if route.protection != .plain {
            parameters.append(.object([("$ref", .string("#/components/parameters/ClientToken"))]))
        }
        if route.sealed, EnvelopePlacement(method: route.method.rawValue) == .header {
            parameters.append(.object([("$ref", .string("#/components/parameters/Envelope"))]))
        }
        for segment in route.path.split(separator: "/") where segment.hasPrefix("{") {
            parameters.append(
                .object([
                    ("name", .string(String(segment.dropFirst().dropLast()))), ("in", .string("path")),
                    ("required", .bool(true)), ("schema", .object([("type", .string("string"))])),
                ]))
        }
        for (name, description) in doc.query {
            parameters.append(
                .object([
                    ("name", .string(name)), ("in", .string("query")), ("required", .bool(false)),
                    ("description", .string(description)), ("schema", .object([("type", .string("string"))])),
                ]))
        }
        if !parameters.isEmpty { members.append(("parameters", .array(parameters))) }
        if route.method == .post {
            let body = route.sealed ? EnvelopeSchema.name : (doc.request?.schemaName ?? EmptyBody.schemaName)
            members.append(
                (
                    "requestBody",
                    .object([
                        ("required", .bool(true)),
                        ("content", .object([("application/json", .object([("schema", reference(body))]))])),
                    ])
                ))
        }
        if route.sealed {
            members.append(("x-sealed", .bool(true)))
            // identity-v1 section 4: what the session's client must be granted (none: a session suffices).
            members.append(("x-permission", doc.permission.map { .string($0.rawValue) } ?? .null))
            // GET and DELETE seal the empty byte string (protocol-v1 section 4), which no JSON schema is: no
            // `x-inner-request` for them (a review: `{}`, which a generated client sealed, is refused).
            if EnvelopePlacement(method: route.method.rawValue) == .body {
                members.append(("x-inner-request", reference(doc.request?.schemaName ?? EmptyBody.schemaName)))
            }
            if let response = doc.response { members.append(("x-inner-response", reference(response.schemaName))) }
        }
        members.append(("responses", responses(route)))
        let errors = Self.errors(of: route)
        members.append(
            (
                "x-error-codes",
                .array(
                    errors.map { error in
                        .object([
                            ("code", .string(error.code.rawValue)),
                            ("status", .integer(Int64(error.code.httpStatus.code))),
                            ("sealed", .bool(error.sealed)),
                        ])
                    })
            ))
        return .object(members)
    }

    private func operationId(_ route: RouteTable.Route) -> String {
        let words = route.path.split(whereSeparator: { "/-{}".contains($0) }).map {
            $0.prefix(1).uppercased() + $0.dropFirst()
        }
        return route.method.rawValue.lowercased() + words.joined()
    }

    private func responses(_ route: RouteTable.Route) -> JSONValue {
        let requestId = JSONValue.object([
            ("description", .string("the id of the log line of this request")),
            ("schema", .object([("type", .string("string"))])),
        ])
        let retryAfter = JSONValue.object([
            ("description", .string("seconds after which a retry may succeed (a hint, outside the seal)")),
            ("schema", .object([("type", .string("integer"))])),
        ])
        var list: [(String, JSONValue)] = []
        let okSchema: JSONValue
        let okDescription: String
        if route.protection != .plain {
            okSchema = reference(EnvelopeSchema.name)
            okDescription = "sealed; inner JSON: \(route.doc.response?.schemaName ?? "none")"
        } else if let response = route.doc.response {
            okSchema = reference(response.schemaName)
            okDescription = "plain JSON"
        } else if route.doc.rawContentType == "application/json" {
            okSchema = .object([("type", .string("object"))])
            okDescription = route.doc.summary
        } else {
            okSchema = .object([("type", .string("string"))])
            okDescription = route.doc.summary
        }
        let okType = route.doc.response == nil && !route.sealed ? route.doc.rawContentType : "application/json"
        list.append(
            (
                "200",
                .object([
                    ("description", .string(okDescription)), ("headers", .object([("X-Request-Id", requestId)])),
                    ("content", .object([(okType, .object([("schema", okSchema)]))])),
                ])
            ))
        let errors = Self.errors(of: route)
        let statuses = Set(errors.map { $0.code.httpStatus.code }).sorted()
        for status in statuses {
            let here = errors.filter { $0.code.httpStatus.code == status }
            let sealed = here.contains { $0.sealed }
            let plain = here.contains { !$0.sealed }
            let schema: JSONValue =
                sealed && plain
                ? .object([("oneOf", .array([reference(EnvelopeSchema.name), reference(ErrorBody.schemaName)]))])
                : reference(sealed ? EnvelopeSchema.name : ErrorBody.schemaName)
            var headers: [(String, JSONValue)] = [("X-Request-Id", requestId)]
            if status == 429 || status == 503 { headers.append(("Retry-After", retryAfter)) }
            let codes = here.map { "\($0.code.rawValue)\($0.sealed ? " (sealed)" : "")" }.joined(separator: ", ")
            list.append(
                (
                    String(status),
                    .object([
                        ("description", .string(codes)), ("headers", .object(headers)),
                        ("content", .object([("application/json", .object([("schema", schema)]))])),
                    ])
                ))
        }
        return .object(list)
    }
}
