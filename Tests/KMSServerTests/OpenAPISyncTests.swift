import Crypto
import Foundation
import HummingbirdTesting
import KMSCore
import KMSProtocol
import Testing

@testable import KMSServer

/// Issue 6: the document cannot drift from the code.
@Suite struct OpenAPISyncTests {
    func table() throws -> RouteTable {
        let sessions = SessionManager(
            store: InMemorySessionStore(), identity: TestServer.identity, policy: SessionPolicy(), clock: SystemClock(),
            clients: ClientRegistry(
                store: LocalClientStore(), masterKey: try MasterKey(bytes: Data(count: 32)), clock: SystemClock()),
            clientAuthRequired: true)
        let keys = KeyRing(
            store: InMemoryKeyStore(), masterKey: try MasterKey(bytes: Data(count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1), clock: SystemClock())
        let channel = SealedChannel(
            sessions: sessions, maxBodyBytes: 1 << 20, resolveKey: keys.resolveNames,
            resolveKeyFresh: keys.resolveNamesFresh)
        let audit = Auditor(
            log: try AuditLog(
                writer: try AuditFile(url: URL(fileURLWithPath: "/dev/null")), key: .init(), after: 0,
                prev: AuditChain.genesis, clock: SystemClock(), maxBytes: 1 << 20, logger: .init(label: "test")))
        return makeRoutes(
            sessions: sessions, channel: channel, keys: keys, metrics: RequestMetrics(), audit: audit,
            maxBodyBytes: 1 << 20)
    }

    /// Each route's error list names what it can answer because of what it is (a review found
    /// them missing): `unknown_session` sealed (a revoked client), `permission_denied` where a
    /// permission is needed, `audit_unavailable` where a change or computation is audited, and
    /// the key states on the crypto routes.
    @Test func errorListsNameWhatEachKindOfRouteAnswers() throws {
        for route in try table().routes {
            // Every route: a declared length past the limit (the edge, after the route's match).
            let plain = OpenAPIDocument.errors(of: route).filter { !$0.sealed }.map(\.code)
            #expect(plain.contains(.payloadTooLarge), "\(route.method) \(route.path)")
            // Every sealed route: a session store that cannot be read, before the session is known.
            if route.sealed { #expect(plain.contains(.serverBusy), "\(route.method) \(route.path)") }
        }
        for route in try table().routes where route.sealed {
            let errors = OpenAPIDocument.errors(of: route)
            func has(_ code: ErrorCode) -> Bool { errors.contains { $0.code == code && $0.sealed } }
            let name = "\(route.method) \(route.path)"
            #expect(has(.unknownSession), "\(name)")
            if route.doc.permission != nil { #expect(has(.permissionDenied), "\(name)") }
            if route.doc.permission != nil, route.method != .get { #expect(has(.auditUnavailable), "\(name)") }
            if [WirePath.encrypt, WirePath.decrypt, WirePath.rewrap, WirePath.dataKey].contains(route.path) {
                #expect(has(.keyDisabled) && has(.keyPendingDeletion), "\(name)")
            }
        }
    }

    /// The document's paths and methods are exactly the declared routes, each declared once.
    @Test func documentPathsEqualTheDeclaredRoutes() throws {
        let table = try table()
        guard case .object(let members) = OpenAPIDocument(routes: table).json,
            case .object(let paths)? = members.first(where: { $0.0 == "paths" })?.1
        else { throw CLIFailure("no paths") }
        var documented = Set<String>()
        for (path, item) in paths {
            guard case .object(let operations) = item else { continue }
            for (method, operation) in operations {
                documented.insert("\(method.uppercased()) \(path)")
                // A sealed POST names its inner request; a sealed GET or DELETE seals the empty byte string.
                guard case .object(let fields) = operation else { continue }
                let sealed = fields.contains { $0.0 == "x-sealed" && $0.1 == .bool(true) }
                let named = fields.contains { $0.0 == "x-inner-request" }
                #expect(named == (sealed && method == "post"), "\(method) \(path)")
            }
        }
        let declared = table.routes.map { "\($0.method.rawValue) \($0.path)" }
        #expect(Set(declared).count == declared.count, "a method and path declared twice")
        #expect(documented == Set(declared), "\(Set(declared).symmetricDifference(documented))")
    }

    /// A literal path wins for its own methods only: an alias named
    /// `generate` from before the name was reserved is still read by
    /// `GET /keys/generate` (lifecycle-v1 rule 9.3), and `405` lists both.
    @Test func aLiteralPathWinsForItsOwnMethodsOnly() throws {
        let table = try table()
        guard case .found(let generate, let none) = table.match(method: .post, path: WirePath.generateKey) else {
            Issue.record("POST /keys/generate did not match")
            return
        }
        #expect(generate.path == WirePath.generateKey && none.isEmpty)
        guard case .found(let read, let parameters) = table.match(method: .get, path: WirePath.generateKey) else {
            Issue.record("GET /keys/generate did not reach /keys/{keyId}")
            return
        }
        #expect(read.path == WirePath.key && parameters.map { "\($0.name)=\($0.value)" } == ["keyId=generate"])
        guard case .wrongMethod(let template, let allowed) = table.match(method: .put, path: WirePath.rotateKey) else {
            Issue.record("PUT /keys/rotate is not a 405")
            return
        }
        #expect(allowed.first == .post && allowed.contains(.get) && Set(allowed).count == allowed.count)
        #expect(template == WirePath.rotateKey)
        guard case .wrongMethod(_, let only) = table.match(method: .get, path: WirePath.keyExchange) else {
            Issue.record("GET /session/key-exchange is not a 405")
            return
        }
        #expect(only == [.post])
        guard case .none = table.match(method: .get, path: "/keys/generate/nothing") else {
            Issue.record("an unknown path matched")
            return
        }
    }

    /// Issue 12: a route path is spelled once in `Sources/` (in `WirePath`,
    /// read by the server's declarations and by the clients).
    @Test func eachRoutePathLiteralOccursOnceInSources() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../Sources")
        var text = ""
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            if file.pathExtension == "swift" { text += try String(contentsOf: file, encoding: .utf8) }
        }
        #expect(!text.isEmpty)
        for path in Set(try table().routes.map(\.path)) {
            let literal = "\"\(path)\""
            #expect(text.components(separatedBy: literal).count - 1 == 1, "\(literal)")
        }
    }

    /// A route declared sealed is behind the channel: without a token it
    /// answers a plain `401 invalid_token` and its handler never runs.
    @Test func everySealedRouteRefusesARequestWithoutToken() async throws {
        let sealed = try table().routes.filter(\.sealed)
        #expect(sealed.count >= 10)
        try await TestServer().run { client in
            for route in sealed {
                let uri = route.path.replacingOccurrences(of: "{keyId}", with: "photos")
                    .replacingOccurrences(of: "{client}", with: "phone")
                    .replacingOccurrences(of: "{alias}", with: "photos")
                    .replacingOccurrences(of: "{accessKeyId}", with: "AKIAABCDEFGHIJ234567")
                let response = try await client.execute(uri: uri, method: route.method)
                #expect(response.status == .unauthorized && response.errorCode == "invalid_token", "\(route.path)")
            }
        }
    }

    /// Every stored property of every wire type is in its schema, and back.
    @Test func schemasNameEveryFieldOfTheirType() {
        for type in OpenAPIDocument.types {
            let fields = Set(Mirror(reflecting: type.example).children.compactMap(\.label))
            let documented = Set(type.schema.propertyNames)
            #expect(fields == documented, "\(type.schemaName): \(fields.symmetricDifference(documented))")
        }
    }

    /// Examples, encoded by the real Codable types, validate against the schemas.
    @Test func examplesValidateAgainstTheirSchemas() throws {
        for type in OpenAPIDocument.types {
            let json = try JSONParser.parse(Data(type.exampleJSON.utf8))
            let problems = SchemaValidator.validate(json, against: type.schema)
            #expect(problems.isEmpty, "\(type.schemaName): \(problems)")
        }
    }

    /// Each size limit the document states is the one the server's reader enforces: a request at the limit
    /// passes both, one past it fails both (a review: the limits were in prose only).
    @Test func documentedLimitsAreTheReadersLimits() throws {
        func bytes(_ count: Int) -> JSONValue { .string(Base64.encode(Data(repeating: 0x61, count: count))) }
        func text(_ count: Int) -> JSONValue { .string(String(repeating: "é", count: count)) }
        func tags(_ count: Int, value: Int = 1) -> JSONValue {
            .object((0..<count).map { ("tag\($0)", text(value)) })
        }
        func grants(_ count: Int, patterns: Int = 1) -> JSONValue {
            let grant = JSONValue.object([
                ("keys", .array((0..<patterns).map { .string("k\($0)") })),
                ("allow", .array([.string("crypto:encrypt")])),
            ])
            return .array(Array(repeating: grant, count: count))
        }
        let most = CryptoLimits.maxPlaintextBytes
        // (type, member, the value at the limit, the value past it). Base64's length counts groups of three
        // bytes: 65,537 and 65,538 bytes are as long as 65,536, so the first length past the text's limit is
        // 65,539 bytes (the byte limit itself is in the description).
        let cases: [(any Documented.Type, String, JSONValue, JSONValue)] = [
            (EncryptRequest.self, "plaintext", bytes(most), bytes(most + 3)),
            (EncryptRequest.self, "aad", bytes(most), bytes(most + 3)),
            (CiphertextRequest.self, "aad", bytes(most), bytes(most + 3)),
            (DataKeyRequest.self, "aad", bytes(most), bytes(most + 3)),
            (GenerateKeyRequest.self, "tags", tags(LabelRules.maxTags), tags(LabelRules.maxTags + 1)),
            (
                GenerateKeyRequest.self, "tags", tags(1, value: LabelRules.maxTagValueCharacters),
                tags(1, value: LabelRules.maxTagValueCharacters + 1)
            ),
            (
                TagsRequest.self, "remove",
                .array((0..<LabelRules.maxTagsRemoved).map { .string("t\($0)") }),
                .array((0...LabelRules.maxTagsRemoved).map { .string("t\($0)") })
            ),
            (
                TagsRequest.self, "remove", .array([text(LabelRules.maxTagKeyCharacters)]),
                .array([text(LabelRules.maxTagKeyCharacters + 1)])
            ),
            (TagsRequest.self, "remove", .array([text(1)]), .array([.string("")])),
            (AddClientRequest.self, "grants", grants(GrantBody.maxGrants), grants(GrantBody.maxGrants + 1)),
            (SetGrantsRequest.self, "grants", grants(GrantBody.maxGrants), grants(GrantBody.maxGrants + 1)),
            (
                SetGrantsRequest.self, "grants", grants(1, patterns: GrantBody.maxPatterns),
                grants(1, patterns: GrantBody.maxPatterns + 1)
            ),
            (SetGrantsRequest.self, "grants", grants(1), grants(1, patterns: 0)),
        ]
        for (type, member, atLimit, pastLimit) in cases {
            guard let strict = type as? any StrictDecodable.Type,
                case .object(let example) = try JSONParser.parse(Data(type.exampleJSON.utf8))
            else {
                Issue.record("\(type.schemaName): no strict reader or no object example")
                continue
            }
            for (value, passes) in [(atLimit, true), (pastLimit, false)] {
                let request = JSONValue.object(example.filter { $0.0 != member } + [(member, value)])
                let documented = SchemaValidator.validate(request, against: type.schema).isEmpty
                let read = (try? strict.parse(Data(request.serialized().utf8))) != nil
                #expect(
                    documented == passes && read == passes,
                    "\(type.schemaName).\(member): document \(documented), reader \(read), expected \(passes)")
            }
        }
        // A public key is exactly 32 bytes: the schema's length is the base64 text's.
        let key = try #require(AddClientRequest.schema.propertySchema("publicKey")?.json.serialized())
        #expect(key.contains(#""minLength":44"#) && key.contains(#""maxLength":44"#), "\(key)")
    }

    /// Documented inner requests are accepted by the server's strict readers.
    @Test func requestExamplesParseStrictly() throws {
        for route in try table().routes {
            guard let request = route.doc.request else { continue }
            guard let strict = request as? any StrictDecodable.Type else {
                Issue.record("\(request.schemaName) is documented as a request but is not StrictDecodable")
                continue
            }
            #expect(throws: Never.self) { _ = try strict.parse(Data(request.exampleJSON.utf8)) }
        }
    }

    @Test func everyErrorCodeIsDocumented() throws {
        let docs = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../docs/protocol.md"),
            encoding: .utf8)
        for code in ErrorCode.allCases {
            #expect(docs.contains("| `\(code.rawValue)` | \(code.httpStatus.code) |"), "\(code.rawValue)")
        }
    }

    @Test func servedDocumentAndPage() async throws {
        try await TestServer().run { client in
            let document = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(document.status == .ok && document.headers[.contentType] == "application/json")
            #expect(document.text.contains("\"openapi\": \"3.0.3\"") && document.text.contains("x-inner-request"))
            let page = try await client.execute(uri: "/docs", method: .get)
            #expect(page.status == .ok && page.text.contains("<h2>keys</h2>") && !page.text.contains("<script"))
            // Every route the table dispatches is on the page (a review: the lifecycle, alias and client routes
            // were left off).
            let routes = try table().routes
            #expect(routes.count > 30)
            // GET and DELETE seal the empty byte string: no inner request schema (`{}` is refused).
            let operations = document.text.components(separatedBy: "\"operationId\"").count - 1
            let innerRequests = document.text.components(separatedBy: "\"x-inner-request\"").count - 1
            let bodies = routes.filter { $0.sealed && $0.method == .post }.count
            #expect(operations == routes.count && innerRequests == bodies, "\(innerRequests) of \(bodies)")
            for route in routes {
                let heading = #">\#(route.method.rawValue)</span> <code>\#(route.path)</code>"#
                #expect(page.text.contains(heading), "\(route.method) \(route.path) is not on /docs")
            }
            let csp = page.headers[.contentSecurityPolicy] ?? ""
            #expect(csp.hasPrefix("default-src 'none'; style-src 'sha256-") && !csp.contains("unsafe"))
            #expect(page.headers[.xContentTypeOptions] == "nosniff")
        }
    }
}

/// A small validator for the JSON Schema subset the document uses.
enum SchemaValidator {
    /// OpenAPI's size keywords: lengths in Unicode scalars, as JSON Schema counts characters.
    static func limitProblems(_ value: JSONValue, _ limits: Schema.Limits, path: String) -> [String] {
        var problems: [String] = []
        if case .string(let text) = value {
            let length = text.unicodeScalars.count
            if let minimum = limits.minLength, length < minimum { problems.append("\(path) shorter than minLength") }
            if let maximum = limits.maxLength, length > maximum { problems.append("\(path) longer than maxLength") }
        }
        if case .array(let items) = value {
            if let minimum = limits.minItems, items.count < minimum { problems.append("\(path) below minItems") }
            if let maximum = limits.maxItems, items.count > maximum { problems.append("\(path) above maxItems") }
            if limits.uniqueItems, Set(items.map { $0.serialized() }).count < items.count {
                problems.append("\(path) not uniqueItems")
            }
        }
        if case .object(let members) = value, let maximum = limits.maxProperties, members.count > maximum {
            problems.append("\(path) above maxProperties")
        }
        return problems
    }

    static func validate(_ value: JSONValue, against schema: Schema, path: String = "$") -> [String] {
        switch (schema, value) {
        case (.object(let properties), .object(let members)):
            var problems: [String] = []
            let names = Set(properties.map(\.name))
            for (key, _) in members where !names.contains(key) { problems.append("\(path).\(key) not in schema") }
            for property in properties {
                if let member = members.first(where: { $0.0 == property.name })?.1 {
                    problems += validate(member, against: property.schema, path: "\(path).\(property.name)")
                } else if property.required {
                    problems.append("\(path).\(property.name) required")
                }
            }
            return problems
        case (.string(_, let pattern, _, let values), .string(let text)):
            if let values, !values.contains(text) { return ["\(path) not in enum"] }
            if let pattern, text.range(of: pattern, options: .regularExpression) == nil {
                return ["\(path) misses pattern"]
            }
            return []
        case (.integer(let minimum, let maximum), .integer(let number)):
            if let minimum, number < minimum { return ["\(path) below minimum"] }
            if let maximum, number > maximum { return ["\(path) above maximum"] }
            return []
        case (.boolean, .bool):
            return []
        case (.array(let items), .array(let elements)):
            return elements.enumerated().flatMap { validate($1, against: items, path: "\(path)[\($0)]") }
        case (.map(let values), .object(let members)):
            return members.flatMap { validate($0.1, against: values, path: "\(path).\($0.0)") }
        case (.nullable, .null):
            return []
        case (.nullable(let inner), _):
            return validate(value, against: inner, path: path)
        case (.limited(let inner, let limits), _):
            return limitProblems(value, limits, path: path) + validate(value, against: inner, path: path)
        case (.reference(let name), _):
            guard let type = OpenAPIDocument.types.first(where: { $0.schemaName == name }) else {
                return ["\(path): unknown \(name)"]
            }
            return validate(value, against: type.schema, path: path)
        default:
            return ["\(path): \(value.typeName) does not match the schema"]
        }
    }
}

extension Schema {
    /// The schema of an object's member, by name.
    func propertySchema(_ name: String) -> Schema? {
        if case .object(let properties) = unlimited { return properties.first { $0.name == name }?.schema }
        return nil
    }
}
