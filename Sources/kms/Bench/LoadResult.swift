import Foundation
import Histogram

/// What one load run measured.
struct LoadResult: Encodable {
    let op: String
    let sessions: Int
    let concurrency: Int
    let seconds: Double
    let requests: Int
    let errors: Int
    let throughput: Double
    let p50Ms: Double
    let p90Ms: Double
    let p99Ms: Double
    let maxMs: Double
    /// Throughput relative to this op's floor (`--floors`), when measured.
    var ratioToFloor: Double?
    var floor: String?
    var firstError: String?
    /// The server's user + system CPU per request (`--server-pid`), in microseconds.
    var serverCPUMicrosPerRequest: Double?
    /// `serverCPUMicrosPerRequest` over healthz's in the same run (`--server-pid` with healthz first or
    /// `--floors`): issue 18's ratio, which the client's share of the cores does not move.
    var serverCPURatioToHealthz: Double?
    /// For a key exchange with `--floors` and `--server-pid`: the rate the server alone could keep on
    /// every core (cores ÷ its CPU per exchange) over the two-thread RSA floor. The measured rate
    /// shares the cores with this process's client, as a real deployment's clients do not.
    var serverAloneRatioToFloor: Double?

    init(
        op: String, sessions: Int, concurrency: Int, seconds: Double, histogram: Histogram<UInt64>, errors: Int,
        firstError: String?
    ) {
        self.op = op
        self.sessions = sessions
        self.concurrency = concurrency
        self.seconds = seconds
        requests = Int(histogram.totalCount)
        self.errors = errors
        throughput = Double(histogram.totalCount) / seconds
        let ms = { (value: UInt64) in Double(value) / 1_000 }
        p50Ms = ms(histogram.valueAtPercentile(50))
        p90Ms = ms(histogram.valueAtPercentile(90))
        p99Ms = ms(histogram.valueAtPercentile(99))
        maxMs = ms(histogram.maxRecorded)
        self.firstError = firstError
    }

    var line: String {
        var text = String(
            format: "%-13@ c=%-3d s=%-3d %9.0f req/s  p50 %7.3f  p90 %7.3f  p99 %7.3f  max %8.3f ms  %7d ok %5d err",
            op as NSString, concurrency, sessions, throughput, p50Ms, p90Ms, p99Ms, maxMs, requests, errors)
        if let ratioToFloor, let floor {
            text += String(format: "  = %5.1f %% of %@", ratioToFloor * 100, floor as NSString)
        }
        if let serverCPUMicrosPerRequest {
            text += String(format: "\n    server CPU %.0f us/request", serverCPUMicrosPerRequest)
            if let serverCPURatioToHealthz { text += String(format: " = %.2f× healthz's", serverCPURatioToHealthz) }
            if let serverAloneRatioToFloor {
                text += String(
                    format: "; the server alone on every core: %.1f %% of the RSA unwrap floor",
                    serverAloneRatioToFloor * 100)
            }
        }
        if let firstError { text += "\n    first error: \(firstError)" }
        return text
    }
}

/// A process's user + system CPU time, from `/proc/PID/stat` (Linux).
enum ServerCPU {
    static func seconds(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / (ticks > 0 ? ticks : 100)
    }
}

/// A figure that limits others: measured in-process, single-threaded.
struct Floor: Encodable {
    let name: String
    let perSecond: Double

    var line: String { String(format: "%-34@ %10.0f /s", name as NSString, perSecond) }
}

/// Runs `body` as often as it can for `seconds` on the current task.
func measureSerial(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    var count = 0
    while clock.now - start < .milliseconds(Int(seconds * 1000)) {
        for _ in 0..<16 { try body() }
        count += 16
    }
    let elapsed = clock.now - start
    return Double(count) / elapsed.inSeconds
}
