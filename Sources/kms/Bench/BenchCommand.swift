import ArgumentParser
import AsyncHTTPClient
import Foundation
import KMSClient

/// `kms bench`: throughput and latency of the server through the client
/// library, the floors that bound them, and how the stores scale.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark the server: throughput, latency percentiles, floors and store scaling.",
        discussion: """
            Without --url, starts its own server in this process (file store and audit log in a temporary \
            folder; the token-rotation, pending-session, key-exchange-rate, live-session and key-count limits lifted). Build in release mode first:
              swift build -c release && .build/release/kms bench --floors
            With --url, lift the same limits on that server, or they are what is measured: \
            KMS_ROTATE_MAX, KMS_PENDING_PER_ADDRESS, KMS_PENDING_MAX, KMS_KEY_EXCHANGE_RATE, and \
            KMS_SESSIONS_PER_CLIENT (every session is one client's: a key-exchange run opens thousands, \
            429 past 1,000), and KMS_MAX_KEYS for --op generate (409 past 10,000 keys); \
            scripts/bench-session.sh starts its servers so.
            """)

    @Option(
        help:
            "One of healthz, key-exchange, encrypt, decrypt, datakey, generate, rotate-token, encrypt-file, decrypt-file (repeatable)."
    )
    var op: [String] = []
    @Option(name: .customLong("file-bytes"), help: "File size for encrypt-file/decrypt-file (default 1 GiB).")
    var fileBytes = 1 << 30
    @Option(help: "Client sessions sharing the load.") var sessions = 4
    @Option(help: "Requests in flight at once.") var concurrency = 32
    @Option(help: "Seconds per operation.") var duration = 5.0
    @Option(name: .customLong("payload-bytes"), help: "Plaintext size for encrypt/decrypt and the AES floor.")
    var payloadBytes = 1024
    @Option(help: "Benchmark a running server instead of an in-process one.") var url: String?
    @Option(
        name: .customLong("server-pid"),
        help:
            "With --url: the server's process id on this machine; its CPU time per request is read from /proc before and after each op (so the ratio does not depend on the client's share of the cores)."
    )
    var serverPID: Int32?
    @Flag(help: "Also measure the floors (RSA-4096 unwrap, AES-GCM seal/open, healthz) and print ratios to them.")
    var floors = false
    @Flag(
        name: .customLong("store-scaling"),
        help: "Measure generate rate at 1k/10k/100k keys, start-up and session memory.")
    var storeScaling = false
    @Option(name: .customLong("scaling-levels"), help: "Key counts for --store-scaling.") var scalingLevels =
        "1000,10000,100000"
    @Flag(help: "Print JSON.") var json = false

    struct Report: Encodable {
        var machine: String
        var floors: [Floor] = []
        var results: [LoadResult] = []
        var storeScaling: StoreScaling.Report?
        var files: FileBench.Report?
    }

    func validate() throws {
        if serverPID != nil, url == nil {
            throw ValidationError("--server-pid needs --url (a server in its own process)")
        }
        if let serverPID, ServerCPU.seconds(pid: serverPID) == nil {
            throw ValidationError("cannot read /proc/\(serverPID)/stat: is the server running on this machine?")
        }
    }

    func run() async throws {
        var report = Report(machine: Self.machine)
        // Lines of this tool's own making, a result and its server CPU on two lines: shown one by one.
        let say = { (text: String) in
            if !json {
                for line in text.split(separator: "\n", omittingEmptySubsequences: false) { printShown(String(line)) }
            }
        }
        say("kms bench on \(report.machine)")
        if storeScaling {
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
            report.storeScaling = try await StoreScaling.run(
                levels: scalingLevels.split(separator: ",").compactMap { Int($0) }, concurrency: 4, seconds: duration,
                binary: binary, log: say)
        }
        var ops = op
        if ops.contains("encrypt-file") || ops.contains("decrypt-file") {
            report.files = try await FileBench.run(bytes: fileBytes, log: say)
            ops.removeAll { $0 == "encrypt-file" || $0 == "decrypt-file" }
            if ops.isEmpty, !floors {
                if json { try printJSON(report) }
                return
            }
        }
        if ops.isEmpty, floors {
            ops = ["healthz", "key-exchange", "encrypt", "decrypt", "datakey", "generate", "rotate-token"]
        }
        if ops.isEmpty, !storeScaling { ops = ["encrypt"] }
        if floors {
            let measured = try Floors.measure(payloadBytes: payloadBytes, seconds: min(duration, 3))
            report.floors = [measured.rsa, measured.rsaAllCores, measured.seal, measured.open]
            say("floors (in-process; single-threaded unless stated):")
            for floor in report.floors { say("  " + floor.line) }
        }
        if !ops.isEmpty {
            let server = url == nil ? try await InProcessServer() : nil
            defer { server?.stop() }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(concurrency, 8)
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            // Shut down on every path: a failed operation (a server that refuses, a pin that does not match)
            // left it to its deinit, which AsyncHTTPClient asserts against (a debug build crashed).
            do {
                let clientKey =
                    try server.map { try ClientKeyLookup.read($0.adminKeyFile.path) } ?? ClientKeyLookup.find()?.key
                let runner = LoadRunner(
                    baseURL: url ?? server?.url ?? "", http: http, sessions: sessions, concurrency: concurrency,
                    duration: duration, payload: Data(repeating: 0x61, count: payloadBytes), clientKey: clientKey,
                    pin: try url.flatMap { _ in try ClientOptions.pin(ProcessInfo.processInfo.environment) })
                var healthz: Double?
                var healthzCPU: Double?
                if floors, !ops.contains("healthz") { ops.insert("healthz", at: 0) }
                say("load (\(url ?? "in-process server"), client in this process):")
                for name in ops {
                    let before = serverPID.flatMap(ServerCPU.seconds(pid:))
                    var result = try await runner.run(name)
                    if let pid = serverPID, let before, let after = ServerCPU.seconds(pid: pid), result.requests > 0 {
                        result.serverCPUMicrosPerRequest = (after - before) / Double(result.requests) * 1e6
                    }
                    if name == "healthz" {
                        healthz = result.throughput
                        healthzCPU = result.serverCPUMicrosPerRequest
                    } else if let healthzCPU, healthzCPU > 0, let cpu = result.serverCPUMicrosPerRequest,
                        name != "key-exchange"
                    {
                        result.serverCPURatioToHealthz = cpu / healthzCPU
                    }
                    if floors {
                        if name == "key-exchange", report.floors.count > 1 {
                            result.ratioToFloor = result.throughput / report.floors[1].perSecond
                            result.floor = "RSA unwrap floor on every core"
                            if let cpu = result.serverCPUMicrosPerRequest, cpu > 0 {
                                let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
                                result.serverAloneRatioToFloor = cores * 1e6 / cpu / report.floors[1].perSecond
                            }
                        } else if name != "healthz", let healthz {
                            result.ratioToFloor = result.throughput / healthz
                            result.floor = "healthz floor"
                        }
                    }
                    report.results.append(result)
                    say("  " + result.line)
                }
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
        if json { try printJSON(report) }
    }

    static var machine: String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces)
            ?? "?"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)"
    }
}
