import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import Synchronization

/// `/openapi.json` and `/docs`, rendered once from the complete route table.
///
/// The two routes are declared like any other, before the table they
/// describe is complete; `publish(_:)` renders both documents once the last
/// route is declared, before the server accepts a connection.
final class DocsController: Sendable {
    private struct Rendered {
        let document: ByteBuffer
        let html: ByteBuffer
        let contentSecurityPolicy: String
    }

    private let rendered = Mutex<Rendered?>(nil)

    func register(on routes: inout RouteBuilder) {
        routes.plain(
            .get, WirePath.openAPI,
            doc: RouteDoc(
                tag: "operations", summary: "OpenAPI document", description: "This API as OpenAPI 3.0 JSON.",
                errors: [])
        ) { [self] _, _ in
            let rendered = try self.current()
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: rendered.document))
        }
        routes.plain(
            .get, WirePath.docs,
            doc: RouteDoc(
                tag: "operations", summary: "API documentation", description: "This page.", errors: [],
                rawContentType: "text/html")
        ) { [self] _, _ in
            let rendered = try self.current()
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: rendered.contentSecurityPolicy,
                ],
                body: .init(byteBuffer: rendered.html))
        }
    }

    /// Renders both documents from the finished table.
    func publish(_ table: RouteTable) {
        let page = DocsPage(routes: table)
        let document = Rendered(
            document: ByteBuffer(string: OpenAPIDocument(routes: table).json.serialized(indent: 2)),
            html: ByteBuffer(string: page.html), contentSecurityPolicy: page.contentSecurityPolicy)
        rendered.withLock { $0 = document }
    }

    private func current() throws(KMSError) -> Rendered {
        guard let rendered = rendered.withLock({ $0 }) else {
            throw KMSError.internal("the API documents were not rendered at start-up")
        }
        return rendered
    }
}
