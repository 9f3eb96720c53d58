import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSServer
import Logging

/// Builds the server the way `kms serve` does, with test parts: a temporary
/// key store, a manual clock, in-memory stores and one identity key shared
/// by the whole test run (`TestIdentity`: a fixed key, not generated).
struct TestServer {
    static let identity = TestIdentity.load()

    /// The admin key every test server enrols at its start (written to its
    /// `KMS_ADMIN_KEY_FILE`); `WireSession` signs with it.
    static let adminKey = Curve25519.Signing.PrivateKey()

    var config: KMSConfiguration
    var dependencies: AppDependencies
    let clock: ManualClock
    let folder: URL

    init(_ environment: [String: String] = [:]) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-test-\(UUID().uuidString)")
        var values = [
            "KMS_HOST": "127.0.0.1", "KMS_PORT": "1",
            "KEY_STORE_PATH": folder.appendingPathComponent("keys").path,
            "KMS_AUDIT_LOG": folder.appendingPathComponent("audit.log").path,
            "KMS_MASTER_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
            "KMS_LOG_LEVEL": "warning",
            // The protocol-v1 suites run with identity off (its own suites turn it on).
            "KMS_CLIENT_AUTH": "off",
            "KMS_ADMIN_KEY_FILE": folder.appendingPathComponent("admin.key").path,
            // A test client starved of CPU on a loaded 2-core machine may pause longer than a real
            // one: the slow-client limits have their own tests (SlowClientTests).
            "KMS_HEADER_TIMEOUT_MS": "120000", "KMS_IDLE_TIMEOUT_MS": "120000",
            // Likewise a loaded disk may take more than 2 s to write an entry; the audit
            // timeout's own test sets a short one (AuditTests).
            "KMS_AUDIT_TIMEOUT_MS": "15000",
        ]
        for (key, value) in environment { values[key] = value }
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // 0600: a first start refuses to enrol a key file others can read.
        guard
            FileManager.default.createFile(
                atPath: folder.appendingPathComponent("admin.key").path,
                contents: Data(ClientKeyFile.pem(Self.adminKey).utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw CLIFailure("cannot write the test admin key") }
        config = try KMSConfiguration(environment: values)
        config.port = 0
        clock = ManualClock(Date())
        dependencies = AppDependencies()
        dependencies.clock = clock
        dependencies.identity = Self.identity
        var logger = Logger(label: "kms-test")
        logger.logLevel = .warning
        dependencies.logger = logger
    }

    /// Runs `body` against the live server on a loopback port.
    func run<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        let app = try await buildApplication(config, dependencies: dependencies)
        defer { try? FileManager.default.removeItem(at: folder) }
        return try await app.test(.live, body)
    }
}
