import ArgumentParser
import Crypto
import Foundation
import KMSClient
import KMSProtocol
import NIOCore
import NIOPosix

/// `kms e2e`: the end-to-end check against a live server, step by step.
struct E2ECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Run the end-to-end check against a live server and print each step with its timing.",
        discussion: """
            Environment: KMS_URL or BASE_URL (default http://localhost:3000), KMS_TOKEN (random if unset), \
            KMS_TOKEN_PREFIX (the server's, if set), KMS_SERVER_FINGERPRINT (pin the server key), KMS_KNOWN_SERVERS (where first-contact keys are remembered, or off), ROTATE_INTERVAL_MS (with --duration: keep \
            working for that long while rotating the token at this interval). Exits non-zero on the \
            first failure, with the server's error.
            """)

    @OptionGroup var client: ClientOptions

    @Option(
        help: "Seconds to keep encrypting and decrypting after the checks (rotating the token with ROTATE_INTERVAL_MS)."
    )
    var duration: Double = 0

    @Option(name: .customLong("rotate-interval-ms"), help: "Token rotation interval in ms (env ROTATE_INTERVAL_MS).")
    var rotateIntervalMs: String?

    @Option(
        help: ArgumentHelp(
            "Seconds to wait for a server that refuses connections (one being started) before the check fails.",
            discussion: "0 tries once. The wait is said when it begins, with the reason."))
    var wait: Double = 30

    func validate() throws {
        try client.refuseJSON("e2e", writes: "its steps as text")
        // `inf` or 1e20 trapped converting to milliseconds (a review finding).
        guard duration.isFinite, duration >= 0, duration <= 30 * 86_400 else {
            throw ValidationError("--duration must be between 0 and 2592000 seconds")
        }
        guard wait.isFinite, wait >= 0, wait <= 3600 else {
            throw ValidationError("--wait must be between 0 and 3600 seconds")
        }
        if let text = rotateIntervalMs { _ = try Self.interval(text, from: "--rotate-interval-ms") }
    }

    /// The rotation interval as written: digits only (the option took `+300` where the setting did not),
    /// at least 1. Set but not a number (`500ms`, a typo) is said, not taken for unset: the run would
    /// pass without ever rotating the token it was asked to exercise (a probe).
    static func interval(_ text: String, from name: String) throws -> Int {
        let digits = text.trimmingCharacters(in: .whitespaces)
        guard digits.isDecimalDigits, let parsed = Int(digits) else {
            throw ValidationError("\(name) must be a whole number of milliseconds, not '\(text)'")
        }
        guard parsed >= 1 else { throw ValidationError("\(name) must be at least 1") }
        return parsed
    }

    func run() async throws {
        var interval = try rotateIntervalMs.map { try Self.interval($0, from: "--rotate-interval-ms") }
        if interval == nil, let text = ProcessInfo.processInfo.environment["ROTATE_INTERVAL_MS"], !text.isEmpty {
            interval = try Self.interval(text, from: "ROTATE_INTERVAL_MS")
        }
        let kms: KMSClient
        do {
            kms = try KMSClient(client.configuration())
        } catch {
            throw ValidationError("\(error)")
        }
        var report = E2EReport()
        let options = client
        report.explain = { error in
            // A remembered server key that no longer matches: the same advice as every other verb gives.
            if case KMSClientError.fingerprintMismatch(_, let actual) = error,
                let advice = options.rememberedMismatch(actual: actual)
            {
                return advice
            }
            // The connection's failure in the codes and words every other verb uses (it printed NIO's text).
            return isNetworkFailure(error) ? networkFailure(error) : "\(error)"
        }
        printShown("kms e2e against \(kms.configuration.redactedBaseURL)")

        try await report.step("health") {
            let (healthy, waited) = try await Self.health(of: kms.configuration.baseURL, waiting: wait)
            guard healthy else { throw CLIFailure(message: "\(WirePath.healthz) did not answer 200") }
            return waited.map {
                "ok, once the server took connections (the time includes \(Self.seconds($0)) s of waiting)"
            }
                ?? "ok"
        }
        try await report.step("session init + key exchange") {
            let info = try await kms.connect()
            return "session \(info.sessionId.prefix(8))…, server \(info.fingerprint.prefix(23))…, ttl \(info.ttlMs) ms"
        }
        try await report.step("token rotation") {
            _ = try await kms.rotateToken(); return "new token issued"
        }
        let alias = "e2e-" + UUID().uuidString.prefix(8).lowercased()
        let key = try await report.step("key generation") {
            let created = try await kms.generateKey(alias: alias)
            return (created.keyId, "\(created.keyId) (\(alias)) v\(created.version)")
        }
        do {
            try await keySteps(kms: kms, key: key, alias: alias, interval: interval, report: &report)
        } catch {
            // A failed step left the check's key working (a review found each run's key kept for good, which
            // the clean-up step ends only for a run that passes): its deletion is scheduled here too, best
            // effort, when the server was answering (after no answer, a second wait would only delay the exit).
            if report.serverAnswered, let scheduled = try? await kms.scheduleKeyDeletion(key, days: 7) {
                printShown("  the check's key \(alias) is deleted on \(scheduled.deletionDate ?? "?")")
            }
            throw error
        }
        try await report.step("session end") {
            try await kms.close(); return "session deleted"
        }
        printShown("e2e passed: \(report.count) steps in \(String(format: "%.1f", report.total)) ms")
    }
}

extension E2ECommand {
    /// Whether the server answers `/healthz` with 200, asked until it accepts a connection or `seconds`
    /// pass: a check run just after `kms serve` is started should not fail on the first refused
    /// connection. The wait is said as it begins (a newcomer's walkthrough: the check against a server
    /// that was down sat silent for 30 s, the client library's retries, before it said anything). Only a
    /// refused connection is waited on: a name that does not resolve, or a host that does not answer,
    /// is said at once (a host that does not answer, after the connect timeout). Returns whether the answer
    /// was 200, and how long was waited when the first try was refused.
    static func health(of baseURL: String, waiting seconds: Double) async throws -> (Bool, Duration?) {
        let transport = HTTPTransport(baseURL: baseURL, client: HTTPTransport.interactive)
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        var pause = Duration.milliseconds(100)
        var waited = false
        while true {
            do {
                let response = try await transport.send(
                    TransportRequest(method: "GET", target: WirePath.healthz, headers: [], body: nil))
                return (response.status == 200, waited ? ContinuousClock.now - start : nil)
            } catch  where isRefused(error) {
                // The last pause ends at the deadline, where one more try is made (a review: the wait gave up
                // a whole pause early, at 0.75 s of `--wait 1.5`).
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else { throw error }
                if !waited {
                    waited = true
                    // Standard error: unbuffered, so it is seen as the wait begins, in a pipe too.
                    writeToStandardError(
                        "note: \(networkReason(error)): waiting up to \(Self.seconds(.milliseconds(Int(seconds * 1000)))) s for the server to start (--wait)\n"
                    )
                }
                try await Task.sleep(for: min(pause, remaining))
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    /// Seconds as a person writes them: `30`, `1.5`.
    static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }

    /// A connection the server's host refused: nothing listens on the port (yet).
    static func isRefused(_ error: any Error) -> Bool {
        switch error {
        case let wrapped as TransportNeverSent: return isRefused(wrapped.underlying)
        case let failure as IOError: return failure.errnoCode == ECONNREFUSED
        case let failures as NIOConnectionError:
            return !failures.connectionErrors.isEmpty && failures.connectionErrors.allSatisfy { isRefused($0.error) }
        default: return false
        }
    }

    /// The steps with the check's key, to its clean-up.
    func keySteps(kms: KMSClient, key: String, alias: String, interval: Int?, report: inout E2EReport) async throws {
        let message = Data("the quick brown fox".utf8)
        let plain = try await report.step("encrypt without aad") {
            let sealed = try await kms.encrypt(key: key, plaintext: message)
            return (sealed.ciphertext, "v\(sealed.version), \(sealed.ciphertext.count) chars")
        }
        try await report.step("decrypt without aad") {
            try expect(try await kms.decrypt(ciphertext: plain).plaintext == message, "round trip differs")
            return "round trip ok"
        }
        let aad = Data("album/2026".utf8)
        let withAAD = try await report.step("encrypt with aad") {
            (try await kms.encrypt(key: alias, plaintext: message, aad: aad).ciphertext, "bound to aad")
        }
        try await report.step("decrypt with aad") {
            try expect(try await kms.decrypt(ciphertext: withAAD, aad: aad).plaintext == message, "round trip differs")
            do {
                _ = try await kms.decrypt(ciphertext: withAAD, aad: Data("other".utf8))
                throw CLIFailure(message: "a wrong aad was accepted")
            } catch let error as KMSClientError where error.code == "decryption_failed" {
                return "round trip ok; wrong aad refused"
            }
        }
        try await report.step("key rotation") { "now v\(try await kms.rotateKey(key).version)" }
        try await report.step("decrypt of the old version") {
            let opened = try await kms.decrypt(ciphertext: plain)
            try expect(opened.version == 1 && opened.plaintext == message, "old version did not decrypt")
            return "v1 still decrypts (grace)"
        }
        try await report.step("rewrap") {
            let rewrapped = try await kms.rewrap(ciphertext: withAAD, aad: aad)
            try expect(rewrapped.version == 2, "rewrap did not move to the active version")
            try expect(
                try await kms.decrypt(ciphertext: rewrapped.ciphertext, aad: aad).plaintext == message,
                "rewrapped differs")
            return "v1 -> v2"
        }
        try await report.step("data key") {
            let dataKey = try await kms.dataKey(key: key, bytes: 32)
            try expect(
                try await kms.decrypt(ciphertext: dataKey.ciphertext).plaintext == dataKey.plaintext, "data key differs"
            )
            return "32-byte key, ciphertext decrypts to it"
        }
        try await report.step("metadata") {
            let metadata = try await kms.key(alias)
            try expect(
                metadata.versions.map(\.status) == ["grace", "active"], "statuses \(metadata.versions.map(\.status))")
            return "v1 grace until \(metadata.versions[0].graceUntil ?? "?"), v2 active"
        }
        try await report.step("list") { "\(try await kms.listKeys(limit: 10).keys.count) keys on the first page" }
        try await report.step("random") {
            let random = try await kms.random(bytes: 32)
            try expect(random.count == 32, "wrong length")
            return "32 bytes"
        }
        try await identitySteps(kms: kms, alias: alias, report: &report)
        if duration > 0 {
            try await report.step(interval == nil ? "work \(duration) s" : "work \(duration) s, rotate token") {
                if let interval { kms.startTokenRotation(every: .milliseconds(interval)) }
                let start = ContinuousClock.now
                var operations = 0
                var tokens = Set([kms.token])
                while ContinuousClock.now - start < .milliseconds(Int(duration * 1000)) {
                    let sealed = try await kms.encrypt(key: key, plaintext: message)
                    try expect(
                        try await kms.decrypt(ciphertext: sealed.ciphertext).plaintext == message, "round trip differs")
                    operations += 2
                    tokens.insert(kms.token)
                }
                guard interval != nil else { return "\(operations) operations across \(tokens.count) tokens" }
                // The timer's failures reach no caller: they are read here, so a run whose rotations were
                // refused does not pass on the tokens it went through (a probe).
                let tally = kms.tokenRotations
                guard tally.failures.isEmpty else {
                    // Only the server's refusals say it is answering: after no answer the key's clean-up would
                    // wait a transport deadline for nothing (a review).
                    throw E2EFailure(
                        message: Self.rotationFailures(tally),
                        serverAnswered: tally.failures.keys.allSatisfy { ErrorCode(rawValue: $0) != nil })
                }
                return "\(operations) operations across \(tokens.count) tokens, \(tally.rotated) timed rotations"
            }
        }
        // Run against a real server, the check should not leave a working key behind (a review found each
        // run's key enabled for good): its deletion is scheduled, the shortest wait the contract allows.
        try await report.step("clean up") {
            let scheduled = try await kms.scheduleKeyDeletion(key, days: 7)
            return "\(alias) deleted on \(scheduled.deletionDate ?? "?") "
                + "(`kms keys cancel-deletion \(alias)` keeps it)"
        }
    }

    /// The timer's failed rotations, by cause, with what to change for the server's rate limit.
    static func rotationFailures(_ tally: TokenRotations) -> String {
        let causes = tally.failures.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }
        var text = "\(tally.rotated) timed rotations made, and refused or failed: \(causes.joined(separator: ", "))"
        if tally.failures[ErrorCode.rateLimited.rawValue] != nil {
            text +=
                " (the rotation interval, ROTATE_INTERVAL_MS or --rotate-interval-ms, is shorter than the server's"
                + " KMS_ROTATE_MAX per KMS_ROTATE_WINDOW_MS allows: 5 in 10 s unless set, and the check's own token"
                + " rotation step counts among them)"
        }
        return text
    }

    /// identity-v1, when this client may manage clients: enrol a second
    /// device with a narrow grant, show an operation outside it denied, revoke
    /// it, and show its token alone is useless.
    func identitySteps(kms: KMSClient, alias: String, report: inout E2EReport) async throws {
        let me = try await report.step("whoami") { () -> (SessionInfoResponse, String) in
            let info = try await kms.whoami()
            return (info, info.client.map { "\($0.name) (\($0.clientId))" } ?? "client identity is off on this server")
        }
        guard let client = me.client, client.grants.contains(where: { $0.allow.contains("clients:manage") }) else {
            return
        }
        let deviceKey = Curve25519.Signing.PrivateKey()
        let name =
            "e2e-"
            + Base64.encodeURL(SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) }).lowercased()
            .filter { $0.isLetter || $0.isNumber }.prefix(12)
        try await report.step("enrol a second client") {
            let added = try await kms.addClient(
                name: name, publicKey: deviceKey.publicKey.rawRepresentation,
                grants: [GrantBody(keys: [alias], allow: ["crypto:encrypt"])])
            return "\(added.name): crypto:encrypt on \(alias) only"
        }
        var configuration = try self.client.configuration()
        configuration.clientKey = deviceKey
        configuration.token = nil
        let device = try KMSClient(configuration)
        let sealed = try await report.step("narrow grant allows") {
            let sealed = try await device.encrypt(key: alias, plaintext: Data("from the second device".utf8))
            return (sealed, "encrypt under \(alias)")
        }
        try await report.step("narrow grant denies") {
            do {
                _ = try await device.decrypt(ciphertext: sealed.ciphertext)
            } catch let error as KMSClientError where error.code == "permission_denied" {
                return "decrypt refused: 403 permission_denied"
            }
            throw CLIFailure(message: "the second client decrypted without crypto:decrypt")
        }
        let token = device.token
        try await report.step("revoke the second client") {
            let revoked = try await kms.revokeClient(name)
            return "revoked at \(revoked.revokedAt ?? "?")"
        }
        try await report.step("a revoked client is refused") {
            do {
                _ = try await device.encrypt(key: alias, plaintext: Data("after revocation".utf8))
            } catch let error as KMSClientError
                where error.code == "client_not_authenticated" || error.code == "unknown_session"
            {
                return "\(error.code ?? "?")"
            }
            throw CLIFailure(message: "a revoked client was served")
        }
        try await report.step("a token alone is useless") {
            var tokenOnly = try self.client.configuration()
            tokenOnly.clientKey = nil
            tokenOnly.token = token
            do {
                _ = try await KMSClient(tokenOnly).random(bytes: 1)
            } catch let error as KMSClientError where error.code == "invalid_request" || error.code == "token_in_use" {
                return "without the device key: \(error.code ?? "?")"
            }
            throw CLIFailure(message: "a token without its device key was served")
        }
    }
}

/// Prints each step with its timing; stops at the first failure.
struct E2EReport {
    var count = 0
    var total = 0.0
    /// How a failed step's error is shown.
    var explain: (any Error) -> String = { "\($0)" }
    /// Whether the server answered the step that failed (a refusal, or an answer the check did not expect).
    private(set) var serverAnswered = false

    mutating func step(_ name: String, _ body: () async throws -> String) async throws {
        _ = try await step(name) { ((), try await body()) }
    }

    mutating func step<T>(_ name: String, _ body: () async throws -> (T, String)) async throws -> T {
        let start = ContinuousClock.now
        do {
            let (value, detail) = try await body()
            let elapsed = ContinuousClock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            count += 1
            total += ms
            printShown(
                "✔ \(name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(String(format: "%8.1f", ms)) ms  \(detail)"
            )
            return value
        } catch {
            printShown("✘ \(name): \(explain(error))")
            serverAnswered =
                (error as? E2EFailure)?.serverAnswered
                ?? (error is CLIFailure || (error as? KMSClientError)?.code != nil)
            throw ExitCode.failure
        }
    }
}

/// A failed check that says whether the server was answering (`E2EReport.serverAnswered`).
struct E2EFailure: Error, CustomStringConvertible {
    let message: String
    let serverAnswered: Bool
    var description: String { message }
}

func expect(_ condition: Bool, _ message: String) throws {
    if !condition { throw CLIFailure(message: message) }
}
