import Metrics
import Prometheus
import Synchronization

/// Request counts and latency histograms by route pattern, method and status,
/// through swift-metrics into a Prometheus registry owned by the application
/// (not the global one, so tests can build several applications), each family
/// with its `# HELP` line (`DescribedMetricsFactory`).
///
/// Labels are route *patterns* (`/keys/{keyId}`), never raw paths: a path can
/// hold anything a client typed, and labels must hold nothing secret.
struct RequestMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: DescribedMetricsFactory
    private let missingForwardedFor: Metrics.Counter
    /// `kms_audit_log_writable`, set when the metrics are read (`render(auditWritable:)`).
    private let auditWritable: Prometheus.Gauge?
    /// `kms_connections_closed_total` by door and reason, made once (`ConnectionGuard`).
    private let closed: [ClosedKey: Metrics.Counter]
    private let handles = Handles()

    /// The counter and timer of each (route, method, status), made once: the
    /// factory's lookup by label and dimensions cost every request ~2 µs.
    /// Bounded: routes are patterns, statuses are the server's own, and a
    /// method outside `knownMethods` is labelled `other`.
    private final class Handles: Sendable {
        struct Key: Hashable {
            let route: String
            let method: String
            let status: Int
        }
        let byKey = Mutex<[Key: (Metrics.Counter, Metrics.Timer)]>([:])
    }

    init() {
        registry = PrometheusCollectorRegistry()
        factory = DescribedMetricsFactory(registry: registry)
        missingForwardedFor = Counter(label: "kms_proxy_requests_without_forwarded_for_total", factory: factory)
        let made = registry
        auditWritable = MetricHelp.descriptor("kms_audit_log_writable").map {
            made.makeGauge(descriptor: $0, labels: [])
        }
        var closed: [ClosedKey: Metrics.Counter] = [:]
        for door in Door.allCases {
            for reason in ClosedConnection.allCases {
                closed[ClosedKey(door: door, reason: reason)] = Counter(
                    label: "kms_connections_closed_total",
                    dimensions: [("door", door.rawValue), ("reason", reason.rawValue)], factory: factory)
            }
        }
        self.closed = closed
    }

    /// The listener a count is of.
    enum Door: String, CaseIterable, Sendable {
        case native
        case aws
    }

    /// Why `ConnectionGuard` closed a connection with no answer of a handler's (an observability review: a
    /// slow-client flood or a run against the connection cap left no trace in the log or the metrics).
    enum ClosedConnection: String, CaseIterable, Sendable {
        /// Past `KMS_MAX_CONNECTIONS`, or its host's share of them: closed at once, nothing read.
        case cap
        /// A new connection whose first request head did not arrive within the header timeout (a client
        /// that never sends, or trickles its head: the slow-client flood).
        case head
        /// A request body that did not arrive within the body timeout.
        case body
        /// A kept connection with no next request within the header timeout after its last answer: mostly
        /// an ordinary idle keep-alive connection (SDKs keep them), so a baseline, not an attack.
        case idle
        /// An answer the client did not read within the idle timeout.
        case stalled
        /// Bytes that are not HTTP/1.1 this server reads: answered `400`, then closed.
        case malformed
    }

    /// A `kms_connections_closed_total` counter's labels (no text built per close).
    private struct ClosedKey: Hashable {
        let door: Door
        let reason: ClosedConnection
    }

    /// A connection `ConnectionGuard` closed, counted by door and reason (labels of the server's own).
    func recordClosedConnection(door: Door, reason: ClosedConnection) {
        closed[ClosedKey(door: door, reason: reason)]?.increment()
    }

    /// The methods a label names; any other (a client chooses it) is `other`,
    /// so neither the registry nor the cache can grow with what clients send.
    static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    func record(route: String, method: String, status: Int, elapsed: Duration) {
        let method = Self.knownMethods.contains(method) ? method : "other"
        let key = Handles.Key(route: route, method: method, status: status)
        let (counter, timer) = handles.byKey.withLock { byKey in
            if let made = byKey[key] { return made }
            let dimensions = [("route", route), ("method", method), ("status", String(status))]
            let made = (
                Counter(label: "kms_http_requests_total", dimensions: dimensions, factory: factory),
                Metrics.Timer(label: "kms_http_request_duration_seconds", dimensions: dimensions, factory: factory)
            )
            byKey[key] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A request from a trusted proxy without `X-Forwarded-For`: the proxy
    /// itself looks like the client (`kms doctor` warns when this counts up).
    func recordMissingForwardedFor() {
        missingForwardedFor.increment()  // made once: every loopback request may pass here
    }

    /// The Prometheus text exposition.
    /// `auditWritable`: the audit log's state now (nil: leave the gauge as it is).
    func render(auditWritable writable: Bool? = nil) -> String {
        if let writable { auditWritable?.set(to: writable ? 1 : 0) }
        return registry.emitToString()
    }
}
