import ArgumentParser
import AsyncHTTPClient
import Foundation
import KMSClient
import KMSCore
import KMSProtocol
import KMSServer
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// How the CLI reaches the server: flags, or the environment the seed's
/// client used (`BASE_URL`, now `KMS_URL` first; `KMS_SERVER_FINGERPRINT`), and `KMS_TOKEN`.
struct ClientOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Server URL: scheme, host and port only (env KMS_URL, else BASE_URL; default http://localhost:3000).")
    var url: String?

    @Option(
        name: .long,
        help:
            "Client token, [A-Za-z0-9._~-]{32,256}, starting with KMS_TOKEN_PREFIX when set (env KMS_TOKEN; random when unset)."
    )
    var token: String?

    @Option(name: .long, help: "Pin the server key: SHA256:<hex> from `kms server-key` (env KMS_SERVER_FINGERPRINT).")
    var fingerprint: String?

    @Flag(
        name: .long,
        help:
            "Print JSON for scripts instead of readable text (e2e and the file verbs refuse it: they print no answer).")
    var json = false

    /// For a verb whose output is not an answer to print as JSON (a file, a report of steps): `--json`
    /// is refused, not silently ignored (a probe: a script asking `kms e2e --json` got text).
    func refuseJSON(_ verb: String, writes what: String) throws {
        if json { throw ValidationError("--json: kms \(verb) writes \(what), not a JSON answer") }
    }

    func configuration(rotateInterval: Duration? = nil) throws -> KMSClientConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let found: ClientKeyLookup.Found?
        do {
            found = try ClientKeyLookup.find(environment: environment)
        } catch {
            // The client key's setting found wrong before anything is sent: 64, as an empty
            // KMS_SERVER_FINGERPRINT is (README; an operator probe found 1). A key file that cannot be read
            // or is not a key stays 1: a failure of the file, not of the command.
            throw CLIFailure(message: error.description, status: error.isSetting ? .validationFailure : .failure)
        }
        // On standard error, so `--json` output stays clean and the notice is still seen (a review found
        // `--json` hid a loose key file's warning).
        if let notice = found?.notice { noteOnce("note: \(notice)\n") }
        // A misspelled setting is otherwise ignored without a word, as `kms serve` warns (a newcomer's
        // walkthrough: `KMS_SERVER_FINGERPRNT` left the pin off, `KMS_ULR` sent to localhost:3000). Only a
        // name near one kms reads: a client's shell holds other tools' `KMS_` names too (a review).
        let near = ConfigVariable.unread(in: environment.keys).compactMap { name in
            ConfigVariable.clientSuggestion(for: name).map { "\(name) (\($0)?)" }
        }
        if !near.isEmpty {
            noteOnce(
                "warning: kms reads no variable named \(near.joined(separator: ", ")), so it is ignored (misspelled? the README lists the client's settings)\n"
            )
        }
        if token != nil {
            // A bearer secret on the command line, as a plaintext argument is (`kms encrypt`'s note; a review).
            noteOnce(
                "note: a token given with --token is visible to other users of this machine while the command runs (ps) and stays in your shell's history: set KMS_TOKEN instead\n"
            )
        }
        let baseURL = url ?? Self.environmentURL(environment)
        // Checked before anything is sent, as the pin is: `--url 127.0.0.1:3000` or an ftp:// URL was sent
        // on and said "server_unreachable" or "no_answer" with the HTTP library's words (a probe).
        guard KnownServers.origin(of: baseURL) != nil else {
            throw ValidationError(
                "the server URL (--url, KMS_URL or BASE_URL) is not an http:// or https:// URL with a host (and a port of 1 to 65535): \(KMSClientConfiguration.redacted(baseURL))"
            )
        }
        if let url, URLComponents(string: url)?.password?.isEmpty == false {
            // The same for a password in --url (a review: it was kept out of every log and message, not out of ps).
            noteOnce(
                "note: a password in --url is visible to other users of this machine while the command runs (ps) and stays in your shell's history: set KMS_URL instead\n"
            )
        }
        // A pin that is given must be one (`checkedPin`).
        let pin = try fingerprint.map(Self.checkedPin) ?? Self.pin(environment)
        var configuration = KMSClientConfiguration(
            baseURL: baseURL, token: token ?? Self.fixedToken(environment),
            fingerprint: pin, rotateInterval: rotateInterval, clientKey: found?.key,
            tokenPrefix: Self.tokenPrefix(environment))
        // Before anything is sent, as a malformed pin is, and before the notes of trust on first use (a
        // probe: a URL with a path was announced as about to be sent to, then refused). An `@` after the
        // host among them: it would send a password's rest as the path and name it in known_servers.
        if let refusal = configuration.settingsRefusal {
            let source =
                switch refusal.setting {
                case .baseURL: url != nil ? "--url" : "KMS_URL or BASE_URL"
                case .token: token != nil ? "--token" : "KMS_TOKEN"
                case .tokenPrefix: "KMS_TOKEN_PREFIX"
                case .fingerprint: fingerprint != nil ? "--fingerprint" : "KMS_SERVER_FINGERPRINT"
                }
            throw ValidationError("\(source): \(refusal.message)")
        }
        if pin == nil { try trustOnFirstUse(&configuration, environment: environment) }
        if let refusal = configuration.refusal { throw ValidationError(refusal) }
        return configuration
    }

    /// `KMS_URL`, else `BASE_URL` (the seed's client's name, kept: with every
    /// server's key remembered, a `BASE_URL` another tool set meets a
    /// first-contact note or a refusal, not silence), else `http://localhost:3000`.
    static func environmentURL(_ environment: [String: String]) -> String {
        [environment["KMS_URL"], environment["BASE_URL"]].compactMap { $0 }.first { !$0.isEmpty }
            ?? "http://localhost:3000"
    }

    /// No pin given: the key remembered for the server is pinned, or, at
    /// first contact, the key it proves it holds is remembered
    /// (`KnownServers`). With `KMS_KNOWN_SERVERS=off`, only a note for a
    /// server that is not on this machine.
    private func trustOnFirstUse(
        _ configuration: inout KMSClientConfiguration, environment: [String: String]
    ) throws {
        let baseURL = configuration.baseURL
        let remembered: KnownServers.Entry?
        let known: KnownServers?
        do {
            known = try KnownServers.fromEnvironment(environment)
            remembered = try KnownServers.origin(of: baseURL).flatMap { origin throws(CLIFailure) in
                try known?.entry(for: origin)
            }
        } catch {
            // As a malformed pin is: exit status 64, before anything is sent.
            throw ValidationError(error.message)
        }
        guard let known, let origin = KnownServers.origin(of: baseURL) else {
            // With known servers off and no pin, nothing checks the server's key: the library wants that
            // said, and the CLI says it to the person (below) unless the server is on this machine.
            configuration.insecureTrustAnyServer = true
            guard !Self.isLoopback(baseURL) else { return }
            noteOnce(
                "note: the server's key is not pinned, so whoever answers at \(configuration.redactedBaseURL) reads what this command sends: set KMS_SERVER_FINGERPRINT to what `kms server-key` prints on the server\n"
            )
            return
        }
        if let entry = remembered {
            configuration.fingerprint = entry.fingerprint
            return
        }
        let interactive = TerminalPrompt.isInteractive
        if !interactive {
            noteOnce(
                "note: the server's key is not pinned and \(origin) is not yet known, so whoever answers there now reads what this command sends; the key it answers with is remembered in \(known.file.path) and required from then on (or set KMS_SERVER_FINGERPRINT to what `kms server-key` prints on the server)\n"
            )
        }
        // Every later session of this run (a renewal, a server restart, another client of `kms e2e`) comes
        // back here: a key already accepted or written down is not asked about again (a review saw a long
        // e2e stop to ask anew). A file that became unreadable meanwhile ends the exchange rather than
        // asking as if it were empty.
        @Sendable func state() -> TrustState { Self.trust.withLock { $0[origin] ?? TrustState() } }
        @Sendable func update(_ change: (inout TrustState) -> Void) {
            Self.trust.withLock { change(&$0[origin, default: TrustState()]) }
        }
        configuration.serverKeyOffered = { fingerprint in
            let now = state()
            if let accepted = now.accepted {
                if Fingerprint.matches(accepted, fingerprint) { return }
                // Accepted a moment ago, another key now: a forged refusal can make the client start again
                // with someone else answering (a review), and a person who has just compared one key is
                // not asked about a second.
                throw CLIFailure(
                    message:
                        "\(origin) answered with key \(fingerprint), but this command accepted \(accepted) for it earlier in this run: something else may be answering in its place, so nothing was sent. Check both with `kms server-key` on the server"
                )
            }
            let notTrusted = CLIFailure(
                message: "\(origin)'s key \(fingerprint) was not trusted: nothing was sent to the server")
            // A key refused once in this run is refused again without asking (a renewal running beside the
            // command would otherwise ask a second time).
            if now.declined.map({ Fingerprint.matches($0, fingerprint) }) == true { throw notTrusted }
            if let entry = try known.entry(for: origin) {
                guard Fingerprint.matches(entry.fingerprint, fingerprint) else {
                    throw known.conflict(origin, remembered: entry.fingerprint, answered: fingerprint)
                }
                update { $0.accept(fingerprint, asked: false, remembered: true) }
                return
            }
            // With a person at the terminal, asked before anything is sent to the server (its token, the
            // client key's signature), as ssh asks about a new host key (a review found the first contact
            // trusted without a word; asking after the key exchange had let the token go first).
            let asked = TerminalPrompt.confirm(
                "The server at \(origin) is not yet known to this machine. It answers with the key\n    \(fingerprint)\nCompare that with what `kms server-key` prints on the server. Remember it in \(known.file.path) and go on? [y/N] "
            )
            guard asked != false else {
                update { $0.declined = fingerprint }
                throw notTrusted
            }
            // A terminal that was there when the command started and is gone now (hung up) is no one
            // saying yes: the run began without the first-contact note, so it does not go on unasked.
            guard asked != nil || !interactive else {
                throw CLIFailure(
                    message:
                        "\(origin)'s key \(fingerprint) could not be asked about (the terminal is gone): nothing was sent to the server"
                )
            }
            update { $0.accept(fingerprint, asked: asked == true, remembered: false) }
        }
        // Written down only once the server has proved it holds the key (the exchange's confirmation opened).
        configuration.serverKeyConfirmed = { fingerprint in
            let now = state()
            guard let accepted = now.accepted, Fingerprint.matches(accepted, fingerprint) else {
                throw CLIFailure(message: "\(origin)'s key \(fingerprint) was not the one accepted")
            }
            if now.remembered { return }
            let outcome: KnownServers.Remembered
            do throws(CLIFailure) {
                outcome = try known.remember(origin, fingerprint: fingerprint)
            } catch {
                // Not remembering leaves this run as unpinned as it was: said (once), not fatal.
                update { $0.remembered = true }
                writeToStandardError("note: could not remember the server's key: \(error.message)\n")
                return
            }
            switch outcome {
            case .added: update { $0.remembered = true }
            case .alreadyKnown:
                update { $0.remembered = true }
                return
            case .conflict(let failure):
                // Another key was written meanwhile: nothing of this run trusts this one any more.
                update { $0 = TrustState() }
                throw failure
            }
            writeToStandardError(
                now.asked
                    ? "remembered; `kms known-servers forget \(origin)` undoes this\n"
                    : "note: remembered \(fingerprint) for \(origin) in \(known.file.path): a server answering there with another key is now refused. Compare it with what `kms server-key` prints on the server; `kms known-servers forget \(origin)` undoes this\n"
            )
        }
    }

    /// Where one run stands with a server not yet known: the key it accepted
    /// (asked or, with no terminal, noted), whether a person said yes to it,
    /// whether it is written down, and a key refused at the terminal.
    private struct TrustState: Sendable {
        var accepted: String?
        var asked = false
        var remembered = false
        var declined: String?

        mutating func accept(_ fingerprint: String, asked: Bool, remembered: Bool) {
            (accepted, self.asked, self.remembered) = (fingerprint, asked, remembered)
        }
    }

    /// Each server's standing in this process, by origin: shared by every
    /// client a command makes (`kms e2e` makes three).
    private static let trust = Mutex<[String: TrustState]>([:])

    /// What to do when the server's key is not the one this machine remembers
    /// for it (nil when the pin was given, not remembered).
    func rememberedMismatch(actual: String) -> String? {
        let environment = ProcessInfo.processInfo.environment
        guard fingerprint ?? environment["KMS_SERVER_FINGERPRINT"] == nil,
            let known = try? KnownServers.fromEnvironment(environment),
            let origin = KnownServers.origin(of: url ?? Self.environmentURL(environment)),
            let entry = try? known.entry(for: origin)
        else { return nil }
        return
            "the server at \(origin) answered with key \(actual), but \(known.file.path) remembers \(entry.fingerprint) for it (first seen \(entry.firstSeen)): something else may be answering in its place, so nothing was sent. If the server's key was changed on purpose (a new data folder, `kms restore --replace-server-secrets`), check \(actual) against what `kms server-key` prints on the server, then run `kms known-servers forget \(origin)`"
    }

    /// `KMS_TOKEN`. The generic `TOKEN`, which the seed's client read, is
    /// not: other tools keep their own secrets there (a CI's API token), and
    /// the CLI sent it to the server, in the clear on plain HTTP, as its
    /// client token. Set alone, it is named on standard error and left alone.
    private static let tokenNoted = Atomic<Bool>(false)

    /// `KMS_SERVER_FINGERPRINT`, refused when it is not a pin: an empty one (`$(kms server-key)` where that
    /// failed) was read as "not pinned" and the client trusted whatever answered (a review finding).
    static func pin(_ environment: [String: String]) throws -> String? {
        try environment["KMS_SERVER_FINGERPRINT"].map(checkedPin)
    }

    static func checkedPin(_ pin: String) throws -> String {
        guard Fingerprint.isWellFormed(pin) else {
            throw ValidationError(
                "the server key pin (--fingerprint or KMS_SERVER_FINGERPRINT) is \(pin.isEmpty ? "empty" : "not SHA256: and 64 hexadecimal digits"): give the fingerprint `kms server-key` prints on the server, or unset it"
            )
        }
        return pin
    }

    /// `KMS_TOKEN_PREFIX`, the server's: a client of a server that sets one draws its tokens with it
    /// (protocol-v1 section 6), so the variable means the same on both sides.
    static func tokenPrefix(_ environment: [String: String]) -> String? {
        environment["KMS_TOKEN_PREFIX"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static func fixedToken(_ environment: [String: String]) -> String? {
        if let token = environment["KMS_TOKEN"], !token.isEmpty { return token }
        if let other = environment["TOKEN"], !other.isEmpty, !tokenNoted.exchange(true, ordering: .relaxed) {
            writeToStandardError(
                "note: TOKEN is not read (other tools keep their secrets under that name, and it would go to the server): set KMS_TOKEN to fix this client's token; a random one is used\n"
            )
        }
        return nil
    }

    /// A server on this machine (`localhost`, 127.0.0.0/8, `::1`): with
    /// `KMS_KNOWN_SERVERS=off` it gets no "not pinned" note (every other
    /// server does). It is remembered like any other when the file is on:
    /// another local user can listen there while `kms serve` is down.
    static func isLoopback(_ baseURL: String) -> Bool {
        guard let host = URLComponents(string: baseURL)?.host?.lowercased() else { return false }
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        // An IPv4 literal in 127.0.0.0/8, not a name that starts like one (`127.0.0.1.example.com`), and
        // written as the resolver reads a literal: `127.0.0.08` is a name it asks DNS about (a review finding).
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0).map(String.init) == String($0) }
    }

    func client() throws -> KMSClient {
        let configuration = try configuration()
        do {
            // A person is waiting: a server that is not running is said at once, not after 30 s of retries.
            return try KMSClient(
                configuration,
                transport: HTTPTransport(baseURL: configuration.baseURL, client: HTTPTransport.interactive))
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// The CLI's verbs for the refusals whose message names an API route to call: the server cannot know
/// its client is this CLI (a newcomer's walkthrough read `POST /keys/{keyId}/enable` and looked for a verb).
let cliVerbs = [
    ErrorCode.keyDisabled.rawValue: "kms keys enable KEY",
    ErrorCode.keyPendingDeletion.rawValue: "kms keys cancel-deletion KEY (which leaves it disabled)",
]

/// Runs a client operation, turning failures into a message that says what to
/// do and a non-zero exit, and always ending the session.
func withClient<T>(_ options: ClientOptions, _ body: (KMSClient) async throws -> T) async throws -> T {
    let client = try options.client()
    do {
        let value = try await body(client)
        try? await client.close()
        return value
    } catch let refusal as KMSClientError {
        try? await client.close()
        let error = refusal.code.flatMap { cliVerbs[$0] }.map { refusal.adding("; with this CLI: \($0)") } ?? refusal
        var message = error.description
        if case .fingerprintMismatch(_, let actual) = error, let remembered = options.rememberedMismatch(actual: actual)
        {
            message = remembered
        }
        if client.configuration.clientKey == nil, case .server(_, _, _, _, "clientKey", _) = error {
            // The server wants a signed key exchange and this client had no key to sign with.
            // Said on the same line: the error's message is shown as one line (it may quote the server).
            message +=
                "; no client key was found: \(ClientKeyLookup.searched()). Make one with `kms client-key init` and have an admin enrol it (docs/identity.md)."
        }
        if error.code == ErrorCode.invalidToken.rawValue, (client.configuration.tokenPrefix ?? "").isEmpty {
            // The server sets a prefix this client does not know of (a probe: nothing said to set it here).
            message += "; if the server sets KMS_TOKEN_PREFIX, set the same KMS_TOKEN_PREFIX for this client"
        }
        if error.code == ErrorCode.clientNotAuthenticated.rawValue, let key = client.configuration.clientKey,
            let found = try? ClientKeyLookup.find()
        {
            // Which key signed (a review: with `client-key init` done, its unenrolled key is tried before a
            // copied admin key, and the server's one answer for every client failure does not say so).
            let fingerprint = ClientAuth.fingerprint(rawPublicKey: key.publicKey.rawRepresentation)
            message +=
                "; this device signed with \(found.path) (\(fingerprint)): an admin enrols that key with `kms clients add` (a revoked key cannot be enrolled again: make a new one), or KMS_CLIENT_KEY_FILE names an enrolled one"
        }
        if case .outcomeUnknown = error {
            // Its own exit status (EX_TEMPFAIL), so a script can tell "may have happened" from "refused".
            writeErrorMessage(message)
            throw ExitCode(75)
        }
        if case .configuration(let what) = error {
            // Refused here before anything was sent (a key id or alias outside the grammar): a usage error,
            // 64 like every other local one (a probe found 1, the status of a server's refusal), said as one
            // (the library's `configuration:` label read as a settings problem to a newcomer).
            writeErrorMessage(what)
            throw ExitCode(64)
        }
        // A 503 (`server_busy`: the database or the audit log unreachable, the server shedding load) refused
        // before anything was done, and says when to try again: a script's retry, 69, not a person's 1 (a
        // PostgreSQL operator's walkthrough saw an outage exit 1). A change the server may have made is the
        // library's `outcomeUnknown`, 75, above.
        // Only with `Retry-After`: a damaged record is a 503 without one, which waiting does not mend (a review).
        if case .server(503, _, _, _, _, _?) = error { throw CLIFailure(message: message, status: serviceUnavailable) }
        throw CLIFailure(message: message)
    } catch let error as FileFormatError {
        try? await client.close()
        throw CLIFailure(message: error.description)
    } catch let error as CLIFailure {
        try? await client.close()
        throw error
    } catch let error as ValidationError {
        try? await client.close()
        throw error
    } catch let error as CocoaError {
        try? await client.close()
        throw CLIFailure(message: ioFailure(error))
    } catch let error as POSIXError {
        // A local read or write (the positional reader throws these), not the network (NIO's are IOError).
        try? await client.close()
        throw CLIFailure(message: "io_error: " + String(cString: strerror(error.code.rawValue)))
    } catch let error where isNetworkFailure(error) {
        // Not sent, or the server was reached, or may have been: a read that timed out, an answer past the size a
        // client reads. (A change whose answer was lost is the library's `outcomeUnknown`, 75, above.) The
        // library passes a sealed read's failure that may have come after the send on as the network's own
        // error, not wrapped (a review: a reset after the key exchange was printed raw, status 1).
        try? await client.close()
        throw CLIFailure(
            message: networkFailure(error, server: client.configuration.redactedBaseURL),
            status: unavailableStatus(error))
    } catch {
        // Anything else is neither the network's nor a refusal: said as it is, status 1, never as "no answer",
        // which a script retries (a review: a server's unreadable key was reported so, and would have been
        // retried for ever).
        try? await client.close()
        throw CLIFailure(message: "\(error)")
    }
}

/// The status of `server_unreachable` and `no_answer` (sysexits' EX_UNAVAILABLE): nothing changed, so a
/// script may try again later, where 1 (a refusal, a damaged file) wants a person (a backup author's
/// walkthrough: every failure was 1, and a cron job had to read standard error to choose).
let serviceUnavailable = ExitCode(69)

/// The errors of the network and of the HTTP client, wrapped by the transport or not. Not those that mean a
/// wrong setting (`isConfigurationError`: `invalidURL`, `emptyHost`, …): nothing about the network,
/// and no retry mends them (a review found them in the list).
func isNetworkFailure(_ error: any Error) -> Bool {
    switch error {
    // Whatever they wrap (a key exchange's unknown outcome, a parser's error from a port that does not speak
    // HTTP), but a wrong setting: the network's, and said with a code (a review: they reached the catch-all,
    // status 1 and no code).
    case let wrapped as TransportNoAnswer: return !isConfigurationError(wrapped.underlying)
    case let wrapped as TransportNeverSent: return !isConfigurationError(wrapped.underlying)
    case is IOError, is NIOConnectionError, is ChannelError, is NIOSSLError, is NIOSSLExtraError,
        is NIOTooManyBytesError, is SocketAddressError.UnknownHost:
        return true
    case is HTTPParserError: return true
    case let failure as HTTPClientError: return !isConfigurationError(failure)
    default: return false
    }
}

/// A wrong setting found as the request was made (a URL the HTTP client cannot use, a port out of range): no
/// retry mends it.
func isConfigurationError(_ error: any Error) -> Bool {
    switch error {
    case KMSClientError.configuration: return true
    case let failure as HTTPClientError: return configurationErrors.contains(failure)
    default: return false
    }
}

/// The HTTP client's errors that mean a wrong URL or a client that cannot send, not the network.
private let configurationErrors: [HTTPClientError] = [
    .invalidURL, .emptyHost, .emptyScheme, .missingSocketPath, .alreadyShutdown,
    .shutdownUnsupported,
]

/// 69, but 1 for a TLS handshake that failed: an `https://` URL to a plain port, or a certificate that is
/// not the one expected (or is for another name), wants a person, not a retry; so does an answer that is not
/// HTTP (a port of another service). A TLS connection cut short (`uncleanShutdown`) is the network's: 69.
func unavailableStatus(_ error: any Error) -> ExitCode {
    switch error {
    case let wrapped as TransportNeverSent: return unavailableStatus(wrapped.underlying)
    case let wrapped as TransportNoAnswer: return unavailableStatus(wrapped.underlying)
    case NIOSSLError.uncleanShutdown: return serviceUnavailable
    case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError: return .failure
    // A port that does not speak HTTP is a wrong URL, as a wrong scheme is: a person's (a review).
    case _ where isNotHTTP(error): return .failure
    default: return serviceUnavailable
    }
}

/// A failure to reach the server or to get its answer (`isNetworkFailure`), with the code every client verb
/// gives it: `server_unreachable` when the transport says nothing was sent (`TransportNeverSent`: a sealed call
/// refused its connection after the key exchange is one now, which read `no_answer`), `no_answer` for any
/// other, which may have come after a first send (a review: the bare error of a resend was judged "never sent").
/// `server`: the URL to name, when the message does not name it elsewhere.
func networkFailure(_ error: any Error, server: String? = nil) -> String {
    let at = server.map { " at \($0)" } ?? ""
    return error is TransportNeverSent
        ? "server_unreachable: cannot reach the server\(at): \(networkReason(error))"
        : "no_answer: no answer from the server\(at): \(networkReason(error))"
}

/// Why a connection failed, in the system's words (NIO's own text read "connection reset (error set):
/// Connection refused) (errno: 111)" for a refused connection); `networkFailure` puts the code before it.
func networkReason(_ error: any Error) -> String {
    switch error {
    case let wrapped as TransportNoAnswer: return networkReason(wrapped.underlying)
    case let wrapped as TransportNeverSent: return networkReason(wrapped.underlying)
    case let failure as IOError: return String(cString: strerror(failure.errnoCode))
    case let failure as SocketAddressError.UnknownHost:
        return "\(failure.host) does not resolve (\(failure.errorDescription))"
    case let failures as NIOConnectionError:
        if let failure = failures.dnsAError ?? failures.dnsAAAAError { return networkReason(failure) }
        // Every address the name gave failed: the last attempt's reason stands for them.
        if let failure = failures.connectionErrors.last?.error { return networkReason(failure) }
        return "\(error)"
    case NIOSSLError.handshakeFailed(let failure):
        // BoringSSL's description names its source file on the build machine: only the reason is said
        // (a probe: an https:// URL to a plain port printed the path of tls_record.cc).
        let reason = TLSReason.code(in: failure)
        if reason == "WRONG_VERSION_NUMBER" {
            return "the answer is not TLS (WRONG_VERSION_NUMBER): does that port serve http://, not https://?"
        }
        return "the TLS handshake failed (\(reason ?? "no reason given"))"
    case HTTPParserError.invalidEOFState: return "the answer was cut short"
    // Its own text ("invalid constant string") said nothing of what was wrong (a probe against an SSH port).
    case _ where isNotHTTP(error):
        return "the answer is not HTTP (\(error)): is that the server's port?"
    default: return "\(error)"
    }
}

/// NIOHTTP1's parser's error for an answer that is not HTTP (a port of another service). Not an answer cut
/// short (`invalidEOFState`: the connection ended inside an answer) nor bytes after an answer that closed its
/// connection (`closedConnection`), which are the network's (a review: every parser error was a wrong URL).
func isNotHTTP(_ error: any Error) -> Bool {
    guard let failure = error as? HTTPParserError else { return false }
    return failure != .invalidEOFState && failure != .closedConnection
}

/// A local file's read or write failed (a full disk, a closed standard output, an input that
/// cannot be read): `io_error`, with the file and the system's reason, so that every failure of
/// a file command names a code (file-format-v1 section 8), not Foundation's "error 512".
func ioFailure(_ error: CocoaError) -> String {
    let file = (error.userInfo[NSFilePathErrorKey] as? String) ?? error.filePath
    return "io_error: " + (file.map { "\($0): " } ?? "") + posixReason(error)
}

/// The system's words for a file error (Foundation's description can be "(null)").
func posixReason(_ error: CocoaError) -> String {
    DurableFile.posixCode(of: error).map { String(cString: strerror($0)) } ?? error.localizedDescription
}

/// A failure already explained to the user; `status` 1 unless it says otherwise.
struct CLIFailure: Error, CustomStringConvertible {
    let message: String
    var status = ExitCode.failure
    var description: String { message }
}
