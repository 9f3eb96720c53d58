import Foundation
import HTTPTypes
import Hummingbird

/// `/healthz` and `/metrics`: plain, allowlisted like everything else.
struct HealthController: Sendable {
    let metrics: RequestMetrics

    struct Health: Encodable, Sendable {
        let status = "ok"
    }

    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(
            .get, "/healthz", sealed: false,
            doc: RouteDoc(
                tag: "operations", summary: "Liveness",
                description: "Answers `{\"status\":\"ok\"}` while the server runs.",
                request: nil, response: Health.self, errors: []))
        router.get("/healthz") { _, _ in try JSONResponse.ok(Health()) }
        table.add(
            .get, "/metrics", sealed: false,
            doc: RouteDoc(
                tag: "operations", summary: "Prometheus metrics",
                description: "Request counts and latency histograms by route pattern, method and status (text format).",
                request: nil, response: nil, errors: [], rawContentType: "text/plain"))
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }
}
