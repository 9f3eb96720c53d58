import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol

/// How a route is protected, which decides its documentation and the
/// channel errors it can answer.
enum RouteProtection: Sendable {
    /// Plain JSON both ways (health, metrics, documents, session init).
    case plain
    /// A plain request carrying `X-Client-Token` whose `200` is sealed (the key exchange).
    case keyExchange
    /// Behind the sealed channel both ways.
    case sealed
}

/// The documentation of one route: what the OpenAPI document and `/docs` say.
struct RouteDoc: Sendable {
    let tag: String
    let summary: String
    let description: String
    /// Codes this route can answer beyond those every route of its kind can.
    let errors: [ErrorCode]
    /// Query parameters (name, description).
    var query: [(String, String)] = []
    /// The (inner, when sealed) request body type; nil for bodyless routes.
    var request: (any Documented.Type)?
    /// The (inner, when sealed) `200` body type; nil for non-JSON answers.
    var response: (any Documented.Type)?
    /// The `200` content type when `response` is nil (not JSON of a documented type).
    var rawContentType = "application/json"
    /// identity-v1: the permission a sealed route needs (nil: a session suffices).
    var permission: Permission?
}

/// Every route the server answers, each declared once with its handler: the
/// table dispatches requests (one match per request, which also decides
/// 404 against 405 before anything runs), names routes in metrics, and is
/// what the OpenAPI document and `/docs` are generated from.
public struct RouteTable: Sendable {
    typealias Handler = @Sendable (Request, KMSRequestContext) async throws -> Response

    public struct Route: Sendable {
        public let method: HTTPRequest.Method
        /// Path pattern with `{name}` parameters, as in OpenAPI.
        public let path: String
        let protection: RouteProtection
        /// What the documentation says about it.
        let doc: RouteDoc
        let handler: Handler

        /// Whether the route is behind the sealed channel.
        public var sealed: Bool { protection == .sealed }
    }

    public private(set) var routes: [Route] = []
    /// Every literal segment of every route's path (`keys`, `access-keys`, …): what the request log
    /// shows of a path that matched none (`LoggedPath`).
    private(set) var words: Set<Substring> = []
    /// Literal paths to their routes: the common case, one dictionary lookup.
    private var literal: [String: [Route]] = [:]

    init() {}

    /// Declares a route (through `RouteBuilder`). Declaring one method and
    /// path twice is a programming error caught by `OpenAPISyncTests`.
    mutating func add(
        _ method: HTTPRequest.Method, _ path: String, _ protection: RouteProtection, doc: RouteDoc,
        handler: @escaping Handler
    ) {
        let route = Route(method: method, path: path, protection: protection, doc: doc, handler: handler)
        routes.append(route)
        if !path.contains("{") { literal[path, default: []].append(route) }
        words.formUnion(path.split(separator: "/").filter { !$0.hasPrefix("{") })
    }

    public enum Match {
        /// The route, with its path parameters (raw, as sent: not percent-decoded).
        case found(Route, parameters: [(name: Substring, value: Substring)])
        /// The path matched routes of other methods: `path` is their template (a metric label).
        case wrongMethod(path: String, allowed: [HTTPRequest.Method])
        case none
    }

    /// Matches a request path (without query) against the table.
    public func match(method: HTTPRequest.Method, path: String) -> Match {
        // A literal path wins over a pattern for the methods it has. Another
        // method may still reach a pattern: an alias named `generate` or
        // `rotate`, made before those names were reserved, keeps working
        // (`GET /keys/generate`, lifecycle-v1 rule 9.3).
        let exact = literal[path] ?? []
        if let route = exact.first(where: { $0.method == method }) { return .found(route, parameters: []) }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        let matching = routes.filter { $0.path.contains("{") && Self.matches(pattern: $0.path, segments: segments) }
        // A literal segment wins over a parameter: only the most literal
        // pattern that matches answers this path.
        let best = matching.max(by: { Self.literals($0.path) < Self.literals($1.path) })
        let candidates = matching.filter { $0.path == best?.path }
        guard let route = candidates.first(where: { $0.method == method }) else {
            var allowed: [HTTPRequest.Method] = []
            for other in exact + candidates where !allowed.contains(other.method) { allowed.append(other.method) }
            guard let template = exact.first?.path ?? best?.path, !allowed.isEmpty else { return .none }
            return .wrongMethod(path: template, allowed: allowed)
        }
        let parts = route.path.split(separator: "/", omittingEmptySubsequences: false)
        let parameters = zip(parts, segments).filter { $0.0.hasPrefix("{") }.map {
            (name: $0.0.dropFirst().dropLast(), value: $0.1)
        }
        return .found(route, parameters: parameters)
    }

    private static func literals(_ pattern: String) -> Int {
        pattern.split(separator: "/").count { !$0.hasPrefix("{") }
    }

    private static func matches(pattern: String, segments: [Substring]) -> Bool {
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == segments.count else { return false }
        for (part, segment) in zip(parts, segments) {
            if part.hasPrefix("{") {
                if segment.isEmpty { return false }
            } else if part != segment {
                return false
            }
        }
        return true
    }
}
