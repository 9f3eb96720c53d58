import HTTPTypes
import KMSProtocol

/// Where controllers declare their routes: one call per route carries its
/// method, path, documentation, body types and handler, and puts all of it
/// in the one `RouteTable` that dispatches and documents.
struct RouteBuilder {
    let channel: SealedChannel
    private(set) var table = RouteTable()

    init(channel: SealedChannel) {
        self.channel = channel
    }

    /// A route outside the sealed channel; `doc` names its body types itself.
    mutating func plain(
        _ method: HTTPRequest.Method, _ path: String, doc: RouteDoc, handler: @escaping RouteTable.Handler
    ) {
        table.add(method, path, .plain, doc: doc, handler: handler)
    }

    /// The key exchange: a plain request carrying `X-Client-Token` whose
    /// `200` the handler itself seals (seq 0). Only `sealed(…)` can declare a
    /// route behind the sealed channel.
    mutating func keyExchange(
        _ method: HTTPRequest.Method, _ path: String, doc: RouteDoc, handler: @escaping RouteTable.Handler
    ) {
        table.add(method, path, .keyExchange, doc: doc, handler: handler)
    }

    /// A sealed route: the handler sees the validated inner request and the
    /// admitted call; its result, or any error it throws, goes back sealed.
    /// The documented inner types are the handler's own (a bodyless method
    /// documents no inner request).
    mutating func sealed<Inner: StrictDecodable & Documented, Output: Encodable & Sendable & Documented>(
        _ method: HTTPRequest.Method, _ path: String, _ inner: Inner.Type, permission: RoutePermission<Inner>,
        doc: RouteDoc, handler: @escaping SealedChannel.Handler<Inner, Output>
    ) {
        var doc = doc
        doc.request = EnvelopePlacement(method: method.rawValue).sealsEmptyBody ? nil : Inner.self
        doc.response = Output.self
        doc.permission = permission.permission
        table.add(method, path, .sealed, doc: doc, handler: channel.handler(inner, permission, handler))
    }
}
