import Crypto
import Foundation
import KMSClient
import KMSCore
import KMSProtocol

/// `kms bench --store-scaling`: how the file store and the session store grow.
enum StoreScaling {
    struct Report: Encodable {
        var generateRate: [String: Double] = [:]
        var startupSeconds: Double = 0
        var startupRSSKilobytes = 0
        var bytesPerLiveSession: Double = 0
    }

    /// Generate rate (KeyRing on the file store, `concurrency` tasks) with
    /// each number of keys already stored; then start-up time and RSS of a
    /// `kms serve` process on the largest store.
    static func run(levels: [Int], concurrency: Int, seconds: Double, binary: URL, log: (String) -> Void) async throws
        -> Report
    {
        var report = Report()
        report.bytesPerLiveSession = try await sessionMemory(count: 100_000)
        log(
            String(
                format: "live sessions: %.0f bytes each (RSS growth over 100,000 sessions)", report.bytesPerLiveSession)
        )
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-scale-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let masterBytes = SymmetricKeyBytes.random(count: 32)
        let master = try MasterKey(bytes: masterBytes)
        let store = try FileKeyStore(
            folder: folder.appendingPathComponent("keys"), lifecycle: KeyLifecycle(graceMs: 1), clock: SystemClock())
        let ring = KeyRing(store: store, masterKey: master, lifecycle: KeyLifecycle(graceMs: 1), clock: SystemClock())
        for level in levels.sorted() {
            let missing = level - (try await store.count())
            if missing > 0 {
                log("filling the store to \(level) keys…")
                try await generate(ring, count: missing, concurrency: concurrency)
            }
            let rate = try await generateRate(ring, concurrency: concurrency, seconds: seconds)
            report.generateRate["\(level)"] = rate
            log(
                String(
                    format: "generate with %7d keys stored: %8.0f keys/s (file store, fsync per key, c=%d)", level,
                    rate, concurrency))
        }
        // The first start creates the identity and audit keys (RSA-4096 generation); the
        // second is the steady state a restart sees.
        _ = try await startServer(binary: binary, folder: folder, masterKey: masterBytes)
        let (startup, rss) = try await startServer(binary: binary, folder: folder, masterKey: masterBytes)
        report.startupSeconds = startup
        report.startupRSSKilobytes = rss
        log(
            String(
                format: "kms serve start-up with %d keys: %.3f s to /healthz, RSS %d KiB", try await store.count(),
                startup, rss))
        return report
    }

    private static func generate(_ ring: KeyRing, count: Int, concurrency: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    for _ in stride(from: worker, to: count, by: concurrency) {
                        _ = try await ring.generate(alias: nil)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private static func generateRate(_ ring: KeyRing, concurrency: Int, seconds: Double) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        let made = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var count = 0
                    while clock.now < deadline {
                        _ = try await ring.generate(alias: nil)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = clock.now - start
        return Double(made) / elapsed.inSeconds
    }

    /// Starts `kms serve` on the store and times it to the first `/healthz` answer.
    private static func startServer(binary: URL, folder: URL, masterKey: Data) async throws -> (Double, Int) {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve"]
        process.currentDirectoryURL = folder
        let port = Int.random(in: 30_000...60_000)
        process.environment = ProcessInfo.processInfo.environment.merging([
            "KMS_PORT": "\(port)", "KMS_HOST": "127.0.0.1",
            "KEY_STORE_PATH": folder.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY": masterKey.base64EncodedString(), "KMS_LOG_LEVEL": "error",
            "KMS_AUDIT_LOG": folder.appendingPathComponent("audit.log").path,
        ]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        let clock = ContinuousClock()
        let start = clock.now
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(port)")
        while clock.now - start < .seconds(60) {
            if let response = try? await transport.send(
                TransportRequest(method: "GET", target: WirePath.healthz, headers: [], body: nil)),
                response.status == 200
            {
                let elapsed = clock.now - start
                return (
                    elapsed.inSeconds,
                    residentKilobytes(pid: process.processIdentifier)
                )
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw BenchError("kms serve did not answer within 60 s")
    }

    /// RSS growth per live session in the in-memory session store.
    static func sessionMemory(count: Int) async throws -> Double {
        let store = InMemorySessionStore()
        let now = Date()
        let before = residentKilobytes()
        for index in 0..<count {
            let id = Base64.encodeURL(SymmetricKeyBytes.random(count: 24))
            try await store.createSession(
                SessionRecord(
                    id: id, tokenHash: ClientToken.hash("bench-token-\(index)-\(id)"),
                    key: SymmetricKey(size: .bits256),
                    createdAt: now, expiresAt: now.addingTimeInterval(900),
                    absoluteExpiry: now.addingTimeInterval(86_400)),
                now: now, max: .max, perClient: .max)
        }
        let after = residentKilobytes()
        withExtendedLifetime(store) {}
        return Double(after - before) * 1024 / Double(count)
    }
}
