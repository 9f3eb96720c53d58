import Metrics
import Prometheus

/// A swift-metrics factory over the application's Prometheus registry that gives each of the server's
/// metric families its `# HELP` line.
///
/// Why not `PrometheusMetricsFactory` alone: swift-metrics' API carries no help text, so that factory
/// registers every family with none, and an operator reading `/metrics` (or a dashboard built from it)
/// had to find what `reason="idle"` means in docs/api.md. The registry takes help text, but refuses (by
/// `fatalError`) one family registered with two different texts, so every family of the application is
/// made here, its text from `MetricHelp`, and none through the plain factory.
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
        registry.makeCounter(name: label, labels: dimensions, help: MetricHelp.text(label))
    }

    func makeFloatingPointCounter(
        label: String, dimensions: [(String, String)]
    ) -> any CoreMetrics.FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: MetricHelp.text(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any CoreMetrics.TimerHandler {
        registry.makeDurationHistogram(
            name: label, labels: dimensions,
            buckets: plain.durationHistogramBuckets[label] ?? plain.defaultDurationHistogramBuckets,
            help: MetricHelp.text(label))
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
            "Answers by route pattern (unmatched, or aws:OPERATION on the AWS door), method and status.",
        "kms_http_request_duration_seconds":
            "Seconds from a request reaching the application to its answer being ready, by route pattern, "
            + "method and status.",
        "kms_connections_closed_total":
            "Connections the server closed with no handler's answer, by door and reason "
            + "(cap, head, body, idle, stalled, malformed; docs/api.md).",
        "kms_proxy_requests_without_forwarded_for_total":
            "Requests from a trusted proxy without X-Forwarded-For: the proxy was taken as the client.",
    ]

    /// A family's text; empty (no `# HELP` line) for a name this table does not know.
    static func text(_ name: String) -> String { byName[name] ?? "" }
}
