import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/healthz` and `/metrics`: plain, allowlisted like everything else.
struct HealthController: Sendable {
    let metrics: RequestMetrics
    /// Read at each scrape for `kms_audit_log_writable` (an operator's review: `/healthz` said ok while every
    /// audited operation was refused, and nothing a monitor reads said otherwise).
    let auditLog: AuditLog

    struct Health: Encodable, Sendable {
        let status = "ok"
    }

    func register(on routes: inout RouteBuilder) {
        routes.plain(
            .get, WirePath.healthz,
            doc: RouteDoc(
                tag: "operations", summary: "Liveness",
                description: "Answers `{\"status\":\"ok\"}` while the server runs.", errors: [],
                response: Health.self)
        ) { _, _ in try JSONResponse.ok(Health()) }
        routes.plain(
            .get, WirePath.metrics,
            doc: RouteDoc(
                tag: "operations", summary: "Prometheus metrics",
                description:
                    "Request counts and latency histograms by route pattern, method and status, and whether the audit log takes entries (text format).",
                errors: [], rawContentType: "text/plain")
        ) { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(string: metrics.render(auditWritable: !auditLog.isFailing))))
        }
    }
}
