import Metrics
import Prometheus

/// A swift-metrics factory over the application's Prometheus registry that gives each of the server's
/// metric families its `# HELP` line.
///
/// Why not `PrometheusMetricsFactory` alone: swift-metrics' API carries no help text, so that factory
/// registers every family with none, and an operator reading `/metrics` (or a dashboard built from it)
/// had to find what `reason="idle"` means in docs/api.md. The registry takes help text, but refuses (by
/// `fatalError`) one family registered with two different texts, so every family of the application is
/// made here, its text from `MetricHelp` (a name it does not know, which the server never makes, goes
/// to the plain factory with none).
struct DescribedMetricsFactory: CoreMetrics.MetricsFactory {
    let registry: PrometheusCollectorRegistry
    /// The kinds the server does not make (recorders, meters) and the histograms' buckets, as
    /// swift-prometheus's own factory has them.
    private let plain: PrometheusMetricsFactory

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        plain = PrometheusMetricsFactory(registry: registry)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CoreMetrics.CounterHandler {
        guard let described = MetricHelp.descriptor(label) else {
            return plain.makeCounter(label: label, dimensions: dimensions)
        }
        return registry.makeCounter(descriptor: described, labels: dimensions)
    }

    func makeFloatingPointCounter(
        label: String, dimensions: [(String, String)]
    ) -> any CoreMetrics.FloatingPointCounterHandler {
        guard let described = MetricHelp.descriptor(label) else {
            return plain.makeFloatingPointCounter(label: label, dimensions: dimensions)
        }
        return registry.makeCounter(descriptor: described, labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any CoreMetrics.TimerHandler {
        guard let described = MetricHelp.descriptor(label) else {
            return plain.makeTimer(label: label, dimensions: dimensions)
        }
        return registry.makeDurationHistogram(
            descriptor: described, labels: dimensions,
            buckets: plain.durationHistogramBuckets[label] ?? plain.defaultDurationHistogramBuckets)
    }

    func makeRecorder(
        label: String, dimensions: [(String, String)], aggregate: Bool
    ) -> any CoreMetrics.RecorderHandler {
        plain.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any CoreMetrics.MeterHandler {
        plain.makeMeter(label: label, dimensions: dimensions)
    }

    func destroyCounter(_ handler: any CoreMetrics.CounterHandler) { plain.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any CoreMetrics.FloatingPointCounterHandler) {
        plain.destroyFloatingPointCounter(handler)
    }
    func destroyRecorder(_ handler: any CoreMetrics.RecorderHandler) { plain.destroyRecorder(handler) }
    func destroyMeter(_ handler: any CoreMetrics.MeterHandler) { plain.destroyMeter(handler) }
    func destroyTimer(_ handler: any CoreMetrics.TimerHandler) { plain.destroyTimer(handler) }
}

/// The `# HELP` text of each metric family the server exposes (docs/api.md says the same at length).
enum MetricHelp {
    static let byName: [String: String] = [
        "kms_http_requests_total":
            "Requests the application answered, by route pattern (unmatched, or aws:OPERATION on the AWS door), "
            + "method and status.",
        "kms_http_request_duration_seconds":
            "Seconds from a request's head reaching the application to its answer built (the upload of a body "
            + "it reads included, the answer's write not), by route pattern, method and status.",
        "kms_connections_closed_total":
            "Connections the server closed for one of these reasons, by door and reason: cap, head, body, idle, "
            + "stalled, malformed (docs/api.md).",
        "kms_proxy_requests_without_forwarded_for_total":
            "Requests from a trusted proxy without X-Forwarded-For: the proxy was taken as the client.",
        "kms_audit_log_writable":
            "0 after the audit log's last write failed or the disk did not answer (audited operations are then "
            + "answered 503 audit_unavailable), 1 again once a write succeeds: on an idle server, after the "
            + "next audited operation.",
    ]

    /// A family of this table, named as given (no unit added) with its text; nil for any other name, which
    /// the plain factory makes without a `# HELP` line (one name is never made both ways: a family the
    /// registry holds with two texts is a `fatalError` of swift-prometheus's).
    static func descriptor(_ name: String) -> MetricNameDescriptor? {
        guard let help = byName[name], !name.isEmpty else { return nil }
        return MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
