import AsyncHTTPClient
import Crypto
import Foundation
import Histogram
import KMSClient
import KMSProtocol
import NIOCore

/// Drives one operation against a server: `concurrency` tasks sharing
/// `sessions` clients, for `duration` seconds, latencies in an HDR histogram
/// (microseconds).
struct LoadRunner {
    let baseURL: String
    let http: HTTPClient
    let sessions: Int
    let concurrency: Int
    let duration: Double
    let payload: Data
    /// Signs every key exchange (the in-process server's admin key, or the CLI's lookup).
    let clientKey: Curve25519.Signing.PrivateKey?
    /// The clients' configuration, made once, with the server key's pin for `--url`'s server (the bench's
    /// own in-process server has a new key each run). Without a pin the bench does not check the server's key
    /// (`insecureTrustAnyServer`): its payloads are made up, and it measures the server it was pointed at.
    let clientConfiguration: KMSClientConfiguration

    init(
        baseURL: String, http: HTTPClient, sessions: Int, concurrency: Int, duration: Double, payload: Data,
        clientKey: Curve25519.Signing.PrivateKey?, pin: String?
    ) {
        (self.baseURL, self.http, self.sessions, self.concurrency) = (baseURL, http, sessions, concurrency)
        (self.duration, self.payload, self.clientKey) = (duration, payload, clientKey)
        clientConfiguration = KMSClientConfiguration(
            baseURL: baseURL, fingerprint: pin, clientKey: clientKey,
            tokenPrefix: ClientOptions.tokenPrefix(ProcessInfo.processInfo.environment),
            insecureTrustAnyServer: pin == nil)
    }

    /// One operation, prepared (sessions established, keys made) before timing starts.
    typealias Operation = @Sendable () async throws -> Void

    func prepare(_ op: String) async throws -> [Operation] {
        let transport = HTTPTransport(baseURL: baseURL, client: http)
        if op == "healthz" {
            return [
                {
                    let response = try await transport.send(
                        TransportRequest(method: "GET", target: WirePath.healthz, headers: [], body: nil))
                    guard response.status == 200 else { throw BenchError("healthz answered \(response.status)") }
                }
            ]
        }
        if op == "key-exchange" {
            return [
                {
                    try await KMSClient(clientConfiguration, transport: transport).connect()
                }
            ]
        }
        var operations: [Operation] = []
        for _ in 0..<sessions {
            let client = try KMSClient(clientConfiguration, transport: transport)
            try await client.connect()
            let key = try await client.generateKey().keyId
            let payload = self.payload
            switch op {
            case "encrypt":
                operations.append { _ = try await client.encrypt(key: key, plaintext: payload) }
            case "decrypt":
                let ciphertext = try await client.encrypt(key: key, plaintext: payload).ciphertext
                operations.append { _ = try await client.decrypt(ciphertext: ciphertext) }
            case "datakey":
                operations.append { _ = try await client.dataKey(key: key) }
            case "generate":
                operations.append { _ = try await client.generateKey() }
            case "rotate-token":
                operations.append { _ = try await client.rotateToken() }
            default:
                throw BenchError(
                    "unknown --op \(op): use healthz, key-exchange, encrypt, decrypt, datakey, generate or rotate-token"
                )
            }
        }
        return operations
    }

    func run(_ op: String) async throws -> LoadResult {
        let operations = try await prepare(op)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int(duration * 1000))
        let results = await withTaskGroup(of: (Histogram<UInt64>, Int, String?).self) { group in
            for task in 0..<concurrency {
                let operation = operations[task % operations.count]
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
                    var errors = 0
                    var firstError: String?
                    while clock.now < deadline {
                        let began = clock.now
                        do {
                            try await operation()
                            let elapsed = clock.now - began
                            _ = histogram.record(
                                UInt64(
                                    elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds
                                        / 1_000_000_000_000))
                        } catch {
                            errors += 1
                            if firstError == nil { firstError = "\(error)" }
                        }
                    }
                    return (histogram, errors, firstError)
                }
            }
            var total = Histogram<UInt64>(highestTrackableValue: 60_000_000)
            var errors = 0
            var firstError: String?
            for await (histogram, count, error) in group {
                total.add(histogram)
                errors += count
                firstError = firstError ?? error
            }
            return (total, errors, firstError)
        }
        let elapsed = clock.now - start
        let seconds = elapsed.inSeconds
        return LoadResult(
            op: op, sessions: op == "healthz" || op == "key-exchange" ? 0 : sessions, concurrency: concurrency,
            seconds: seconds, histogram: results.0, errors: results.1, firstError: results.2)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
