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
        table.add(.get, "/healthz", sealed: false)
        router.get("/healthz") { _, _ in try JSONResponse.ok(Health()) }
        table.add(.get, "/metrics", sealed: false)
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
    }
}
