import Foundation
import KMSClient
import KMSCore
import Synchronization

/// Runs the built `kms` binary, for tests of the CLI and of `kms serve` itself.
enum CLIProcess {
    /// The `kms` executable next to the test bundle (`swift test` builds it too).
    static var binary: URL {
        let candidates = [
            Bundle.main.executableURL?.deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        ].compactMap { $0 }
        for folder in candidates {
            let url = folder.appendingPathComponent("kms")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../../.build/debug/kms").standardized
    }

    /// Where every CLI run of this test process remembers server keys
    /// (`KMS_KNOWN_SERVERS`), never the user's home: ports are unique within
    /// a run (`TestPorts`), server identities are not across runs.
    static let knownServers = FileManager.default.temporaryDirectory
        .appendingPathComponent("kms-known-\(UUID().uuidString)/known_servers").path

    /// This process's environment for a CLI run, without the client's own
    /// settings (a developer's `KMS_URL` would send the tests elsewhere),
    /// with `knownServers` and then `extra` over it.
    static func environment(_ extra: [String: String]) -> [String: String] {
        let clientSettings: Set = [
            "KMS_URL", "BASE_URL", "KMS_TOKEN", "TOKEN", "KMS_SERVER_FINGERPRINT", "KMS_CLIENT_KEY_FILE",
        ]
        return ProcessInfo.processInfo.environment.filter { !clientSettings.contains($0.key) }
            .merging(["KMS_KNOWN_SERVERS": knownServers]) { $1 }.merging(extra) { $1 }
    }

    struct Output {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs and returns standard output as bytes; a non-zero exit throws with standard error.
    @discardableResult
    static func runData(_ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil) async throws
        -> Data
    {
        let (status, stdout, stderr) = try await execute(arguments, environment: environment, stdin: stdin)
        guard status == 0 else {
            throw CLIFailure("kms \(arguments.joined(separator: " ")): \(String(decoding: stderr, as: UTF8.self))")
        }
        return stdout
    }

    /// `launcher`: a program and its arguments that run the binary (`setpriv` to run it as another user).
    static func run(
        _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil, launcher: [String] = []
    ) async throws -> Output {
        let (status, stdout, stderr) = try await execute(
            arguments, environment: environment, stdin: stdin, launcher: launcher)
        return Output(
            status: status, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Off the cooperative pool (`offPool`): the process may be a client of this test process's own server.
    private static func execute(
        _ arguments: [String], environment: [String: String], stdin: Data?, launcher: [String] = []
    ) async throws -> (Int32, Data, Data) {
        try await offPool {
            try executeBlocking(arguments, environment: environment, stdin: stdin, launcher: launcher)
        }
    }

    /// How long one run may take before it is killed (SIGKILL, so its status says so): a refusal that
    /// regressed into a `kms serve` that runs would otherwise hold the suite, and CI, for ever, silently
    /// (a review of the suite's timing).
    static let maximumRun = 300

    private static func executeBlocking(
        _ arguments: [String], environment: [String: String], stdin: Data?, launcher: [String]
    ) throws -> (Int32, Data, Data) {
        let process = ChildProcess()
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        process.environment = Self.environment(environment)
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(maximumRun)) {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        // Standard error is drained and standard input written on threads of their own, so a
        // process that fills one pipe while another is being served does not wait for ever.
        let stderrData = Mutex(Data())
        let drained = DispatchSemaphore(value: 0)
        let written = DispatchSemaphore(value: 0)
        let (errHandle, inHandle) = (err.fileHandleForReading, input.fileHandleForWriting)
        Thread.detachNewThread {
            let data = errHandle.readDataToEndOfFile()
            stderrData.withLock { $0 = data }
            drained.signal()
        }
        Thread.detachNewThread {
            if let stdin { inHandle.write(stdin) }
            try? inHandle.close()
            written.signal()
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        written.wait()
        let stderr = stderrData.withLock { $0 }
        process.waitUntilExit()
        return (process.terminationStatus, stdout, stderr)
    }
}

/// A real `kms serve` process on a loopback port, in its own folder.
final class ServeProcess: @unchecked Sendable {
    let process = ChildProcess()
    let folder: URL
    let port: Int
    let log: URL
    var url: String { "http://127.0.0.1:\(port)" }
    /// The admin key the server wrote at its first start (identity-v1 section 6).
    var adminKeyFile: String { folder.appendingPathComponent("data/admin.key").path }
    /// What a CLI client of this server needs: its URL and the admin key.
    var clientEnvironment: [String: String] { ["BASE_URL": url, "KMS_CLIENT_KEY_FILE": adminKeyFile] }
    /// What the verbs that read this server's store (`doctor`, `audit`, `backup`, …) need: its store, master
    /// key and audit log, in its folder's `data`.
    var storeEnvironment: [String: String] {
        let data = folder.appendingPathComponent("data")
        return [
            "KEY_STORE_PATH": data.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": data.appendingPathComponent("master.key").path,
            "KMS_AUDIT_LOG": data.appendingPathComponent("audit.log").path,
        ]
    }

    /// The settings that put a server's whole state in `folder` (store, master key, audit log, admin key):
    /// for a `kms serve` a test starts by hand and expects to refuse before it writes anything there.
    static func stateEnvironment(in folder: URL) -> [String: String] {
        [
            "KEY_STORE_PATH": folder.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": folder.appendingPathComponent("master.key").path,
            "KMS_AUDIT_LOG": folder.appendingPathComponent("audit.log").path,
            "KMS_ADMIN_KEY_FILE": folder.appendingPathComponent("admin.key").path,
        ]
    }

    /// `seedIdentity`: give a file store with no master key yet the test run's
    /// shared identity key (an RSA-4096 generation costs seconds of CPU in a
    /// debug build, and many tests start servers at once).
    /// `folder`: an earlier server's, to start it again (nil: a new one). `probeHeaders`: sent with the
    /// readiness probe (an `X-Forwarded-For` for a server whose allowlist refuses loopback itself).
    /// `port`: one a test chose (nil: the next free one).
    init(
        environment: [String: String] = [:], seedIdentity: Bool = true, folder existing: URL? = nil,
        probeHeaders: [(String, String)] = [], port chosen: Int? = nil
    ) async throws {
        folder =
            existing ?? FileManager.default.temporaryDirectory.appendingPathComponent("kms-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if seedIdentity { try await Self.seed(folder: folder, environment: environment) }
        port = chosen ?? TestPorts.take()
        log = folder.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = CLIProcess.binary
        process.arguments = ["serve"]
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(
            // A loaded CI disk may take more than the default 2 s to write an audit entry
            // (AuditTests covers the timeout itself).
            ["KMS_PORT": "\(port)", "KMS_HOST": "127.0.0.1", "KMS_LOG_LEVEL": "info", "KMS_AUDIT_TIMEOUT_MS": "15000"]
                .merging(environment) { $1 }
        ) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let health = HTTPTransport(baseURL: url)
        // Up to 120 s: a first start generates an RSA-4096 key, whose prime search
        // takes seconds in a debug build and many more on a loaded machine.
        for _ in 0..<1200 {
            if let response = try? await health.send(
                TransportRequest(method: "GET", target: "/healthz", headers: probeHeaders, body: nil)),
                response.status == 200
            {
                return
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIFailure("kms serve did not start: \(logText)")
    }

    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    private static func seed(folder: URL, environment: [String: String]) async throws {
        guard environment["KMS_STORE"] != "postgres", environment["KMS_MASTER_KEY"] == nil else { return }
        let data = folder.appendingPathComponent("data")
        let keyStore = URL(fileURLWithPath: environment["KEY_STORE_PATH"] ?? data.appendingPathComponent("keys").path)
        let masterKeyFile = URL(
            fileURLWithPath: environment["KMS_MASTER_KEY_FILE"] ?? data.appendingPathComponent("master.key").path)
        guard !FileManager.default.fileExists(atPath: masterKeyFile.path) else { return }
        for created in [masterKeyFile.deletingLastPathComponent(), keyStore] {
            try FileManager.default.createDirectory(
                at: created, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let bytes = Data((0..<32).map { _ in UInt8.random(in: 0...255) })
        guard
            FileManager.default.createFile(
                atPath: masterKeyFile.path, contents: Data((bytes.base64EncodedString() + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw CLIFailure("cannot write the master key") }
        try await IdentityKeyLoader.seed(
            TestServer.identity, store: FileSecretBlobStore(folder: keyStore), masterKey: try MasterKey(bytes: bytes))
    }

    /// Sends SIGTERM and returns the exit status.
    func stop() async throws -> Int32 {
        try await offPool {
            self.process.terminate()
            // A server that does not stop within a minute of SIGTERM is killed (its status then says so),
            // rather than holding the suite for ever.
            let process = self.process
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(60)) {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            self.process.waitUntilExit()
            return self.process.terminationStatus
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: folder)
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
