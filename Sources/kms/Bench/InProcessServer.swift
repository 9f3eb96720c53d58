import Foundation
import Hummingbird
import KMSCore
import KMSServer
import Logging
import Synchronization

/// `kms serve` inside the benchmark process, on a loopback port, in a
/// temporary folder: the same application, file store and audit log.
final class InProcessServer: Sendable {
    let url: String
    let folder: URL
    /// The admin key the server enrolled at its first start (the bench signs with it).
    var adminKeyFile: URL { folder.appendingPathComponent("admin.key") }
    private let task: Task<Void, any Error>

    init(environment: [String: String] = [:]) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-bench-\(UUID().uuidString)")
        self.folder = folder
        var values = [
            "KMS_HOST": "127.0.0.1", "KEY_STORE_PATH": folder.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": folder.appendingPathComponent("master.key").path,
            "KMS_AUDIT_LOG": folder.appendingPathComponent("audit.log").path, "KMS_LOG_LEVEL": "error",
            "KMS_ADMIN_KEY_FILE": folder.appendingPathComponent("admin.key").path,
            "KMS_ROTATE_MAX": "1000000", "KMS_PENDING_PER_ADDRESS": "100000", "KMS_PENDING_MAX": "100000",
            "KMS_KEY_EXCHANGE_RATE": "100000",
            "KMS_SESSIONS_MAX": "10000000",
            // Every bench session is the admin's: a key-exchange run opens thousands.
            "KMS_SESSIONS_PER_CLIENT": "10000000", "KMS_MAX_KEYS": "10000000",
        ]
        for (key, value) in environment { values[key] = value }
        var config = try KMSConfiguration(environment: values)
        config.port = 0
        let port = Mutex<Int?>(nil)
        var dependencies = AppDependencies()
        var logger = Logger(label: "kms-bench-server")
        logger.logLevel = .critical
        dependencies.logger = logger
        dependencies.onServerRunning = { value in port.withLock { $0 = value } }
        let app = try await buildApplication(config, dependencies: dependencies)
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for _ in 0..<600 {
            if let value = port.withLock({ $0 }) {
                url = "http://127.0.0.1:\(value)"
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        task.cancel()
        throw BenchError("the in-process server did not start")
    }

    func stop() {
        task.cancel()
        try? FileManager.default.removeItem(at: folder)
    }
}

/// This process's resident memory, from /proc (Linux).
func residentKilobytes(pid: Int32 = getpid()) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}
