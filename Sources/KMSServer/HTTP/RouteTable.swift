import HTTPTypes
import KMSProtocol

/// The documentation of one route: one place for what the OpenAPI document
/// and `/docs` say, next to where the route is registered.
struct RouteDoc: Sendable {
    let tag: String
    let summary: String
    let description: String
    /// The (inner, when sealed) request body type; nil for bodyless routes.
    let request: (any Documented.Type)?
    /// The (inner, when sealed) `200` body type; nil for non-JSON answers.
    let response: (any Documented.Type)?
    /// Codes this route can answer beyond those every route of its kind can.
    let errors: [ErrorCode]
    /// Query parameters (name, description).
    var query: [(String, String)] = []
    /// The `200` content type when `response` is nil (not JSON of a documented type).
    var rawContentType = "application/json"
}

/// Every route the server answers, in one list: it registers the routes,
/// decides 404 against 405 before any route runs, names routes in metrics,
/// and is what the OpenAPI document is checked against.
public struct RouteTable: Sendable {
    public struct Route: Sendable {
        public let method: HTTPRequest.Method
        /// Path pattern with `{name}` parameters, as in OpenAPI.
        public let path: String
        /// Whether the route is behind the sealed channel.
        public let sealed: Bool
        /// What the documentation says about it.
        let doc: RouteDoc
    }

    public private(set) var routes: [Route] = []
    /// Literal paths to their routes: the common case, one dictionary lookup.
    private var literal: [String: [Route]] = [:]

    public init() {}

    mutating func add(_ method: HTTPRequest.Method, _ path: String, sealed: Bool, doc: RouteDoc) {
        let route = Route(method: method, path: path, sealed: sealed, doc: doc)
        routes.append(route)
        if !path.contains("{") { literal[path, default: []].append(route) }
    }

    public enum Match {
        case found(Route)
        case wrongMethod(allowed: [HTTPRequest.Method])
        case none
    }

    /// Matches a request path (without query) against the table.
    public func match(method: HTTPRequest.Method, path: String) -> Match {
        // A literal path always wins over a pattern (as in Hummingbird's trie).
        if let candidates = literal[path] {
            if let route = candidates.first(where: { $0.method == method }) { return .found(route) }
            return .wrongMethod(allowed: candidates.map(\.method))
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        let matching = routes.filter { Self.matches(pattern: $0.path, segments: segments) }
        // As in Hummingbird's trie, a literal segment wins over a parameter:
        // only the most literal pattern that matches answers this path.
        guard let best = matching.max(by: { Self.literals($0.path) < Self.literals($1.path) }) else {
            return .none
        }
        let candidates = matching.filter { $0.path == best.path }
        if let route = candidates.first(where: { $0.method == method }) { return .found(route) }
        return .wrongMethod(allowed: candidates.map(\.method))
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
