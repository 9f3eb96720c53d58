import Foundation
import HTTPTypes
import Hummingbird

/// `/openapi.json` and `/docs`, rendered once at start-up from the route table.
struct DocsController: Sendable {
    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(
            .get, "/openapi.json", sealed: false,
            doc: RouteDoc(
                tag: "operations", summary: "OpenAPI document", description: "This API as OpenAPI 3.0 JSON.",
                request: nil, response: nil, errors: []))
        table.add(
            .get, "/docs", sealed: false,
            doc: RouteDoc(
                tag: "operations", summary: "API documentation", description: "This page.", request: nil,
                response: nil, errors: [], rawContentType: "text/html"))
    }

    /// Registers the handlers once the table is complete (the documents describe every route).
    func serve(on router: Router<KMSRequestContext>, table: RouteTable) {
        let document = ByteBuffer(string: OpenAPIDocument(routes: table).json.serialized(indent: 2))
        let page = DocsPage(routes: table)
        let html = ByteBuffer(string: page.html)
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: document))
        }
        router.get("/docs") { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: page.contentSecurityPolicy,
                ],
                body: .init(byteBuffer: html))
        }
    }
}
