import AsyncHTTPClient
import Crypto
import Foundation
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSServer
import NIOCore
import Synchronization
import Testing

@testable import KMSClient

/// Issue 5: the Swift client against a live in-process server.
@Suite struct ClientTests {
    func client(_ port: Int?, fingerprint: String? = nil, transport: (any KMSTransport)? = nil) throws -> KMSClient {
        let base = HTTPTransport(baseURL: "http://127.0.0.1:\(port ?? 0)")
        return try KMSClient(
            KMSClientConfiguration(
                baseURL: base.baseURL, fingerprint: fingerprint, insecureTrustAnyServer: fingerprint == nil),
            transport: transport ?? base)
    }

    /// Connects, expecting the server's key to be refused as not the pinned one.
    static func expectMismatch(_ kms: KMSClient, sourceLocation: SourceLocation = #_sourceLocation) async {
        let error = await #expect(throws: KMSClientError.self, sourceLocation: sourceLocation) {
            try await kms.connect()
        }
        guard case .fingerprintMismatch = error else {
            Issue.record(
                "expected a fingerprint mismatch, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
    }

    /// What the CLI shows of a server's answer or a file's header: controls and invisible characters
    /// (a bidi override, a zero-width space, a line separator) are written out, backslashes doubled,
    /// and everything else, right-to-left scripts included, is left as it is.
    @Test func terminalTextShowsControlsAndInvisibleCharactersAsEscapes() {
        #expect(TerminalText.escaped("key\u{1B}[2J\u{9B}1m") == #"key\u{1b}[2J\u{9b}1m"#)
        #expect(TerminalText.escaped("invoice\u{202E}fdp.exe") == #"invoice\u{202e}fdp.exe"#)
        #expect(TerminalText.escaped("a\u{200B}b\u{2028}c\u{FEFF}") == #"a\u{200b}b\u{2028}c\u{feff}"#)
        #expect(TerminalText.escaped(#"C:\keys"#) == #"C:\\keys"#)
        #expect(TerminalText.escaped("צילומים 写真 photos-2026") == "צילומים 写真 photos-2026")
        // Joiners are kept: Persian and emoji sequences need them.
        #expect(TerminalText.escaped("می\u{200C}خواهم 👨\u{200D}👩") == "می\u{200C}خواهم 👨\u{200D}👩")
        // Except where text is matched byte for byte (a file's context): `file\u{200d}` read as `file` in
        // inspect-file, and so did a variation selector, the combining grapheme joiner, a Hangul filler.
        #expect(
            TerminalText.escaped("file\u{200D}\u{200C}\u{FE0F}\u{34F}\u{3164}", escapingIgnorables: true)
                == #"file\u{200d}\u{200c}\u{fe0f}\u{34f}\u{3164}"#)
        // In JSON, what JSON leaves raw becomes a JSON escape (UTF-16, surrogates for a tag character).
        #expect(
            TerminalText.jsonEscaped("{\n  \"d\" : \"a\u{9B}b\u{202E}c\u{E0041}\u{7F}\"\n}")
                == "{\n  \"d\" : \"a\\u009bb\\u202ec\\udb40\\udc41\\u007f\"\n}")
        // Bytes: nil when nothing is to be written out, the same answer from contiguous bytes (the audit
        // line's, looked at in place) and from a collection that is not contiguous.
        let plain = Array(#"{"a":"b\u0001"}"#.utf8)
        let raw = Array("{\"d\":\"a\u{7F}b\"}".utf8)
        #expect(TerminalText.jsonEscapedIfNeeded(plain) == nil)
        #expect(TerminalText.jsonEscapedIfNeeded(Data(plain)) == nil)
        #expect(TerminalText.jsonEscapedIfNeeded(plain.reversed()) == nil)
        #expect(TerminalText.jsonEscapedIfNeeded(raw) == #"{"d":"a\u007fb"}"#)
        #expect(TerminalText.jsonEscapedIfNeeded(Data(raw)) == #"{"d":"a\u007fb"}"#)
        #expect(TerminalText.jsonEscapedIfNeeded(raw.reversed()) != nil)
    }

    /// A port past 65535 made AsyncHTTPClient trap (a review crashed the CLI with `--url …:99999`):
    /// the client refuses it, and so does the transport used alone.
    @Test func aPortThatIsNotOneIsRefused() async throws {
        #expect(throws: KMSClientError.self) {
            try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:99999", insecureTrustAnyServer: true))
        }
        // An @ after the host (a password's raw @): its rest would be sent as the request path.
        #expect(throws: KMSClientError.self) {
            try KMSClient(
                KMSClientConfiguration(
                    baseURL: "http://u:pa@127.0.0.1:3000/w0rd@127.0.0.1:3000", insecureTrustAnyServer: true))
        }
        await #expect(throws: TransportNeverSent.self) {
            try await HTTPTransport(baseURL: "http://127.0.0.1:70000").send(
                TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        }
    }

    /// A review: with no pin and no hook, the library trusted whatever key answered, and its own example
    /// (docs/files.md) did so over plain HTTP. Such a configuration is refused unless it says it is meant,
    /// and a malformed pin is refused as one (it failed every exchange as a changed server key).
    @Test func aClientThatChecksNoServerKeyIsRefusedUnlessItSaysSo() throws {
        let refused = #expect(throws: KMSClientError.self) {
            try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000"))
        }
        #expect("\(String(describing: refused))".contains("nothing checks the server's key"))
        let pin = "SHA256:" + String(repeating: "ab", count: 32)
        let malformed = #expect(throws: KMSClientError.self) {
            try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000", fingerprint: pin + "\n"))
        }
        #expect("\(String(describing: malformed))".contains("not SHA256: and 64 hexadecimal digits"))
        _ = try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000", fingerprint: pin))
        _ = try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000/", fingerprint: pin))
        // A path would be sent in each request but not bound into its seal as the server reads it.
        for url in ["http://127.0.0.1:3000/kms", "http://127.0.0.1:3000/?a=1"] {
            let refusal = #expect(throws: KMSClientError.self) {
                try KMSClient(KMSClientConfiguration(baseURL: url, fingerprint: pin))
            }
            #expect("\(String(describing: refusal))".contains("scheme, host and port only"), "\(url)")
        }
        _ = try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000", serverKeyConfirmed: { _ in }))
        _ = try KMSClient(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000", insecureTrustAnyServer: true))
    }

    /// A review: the client drew every token without the server's `KMS_TOKEN_PREFIX`, so a server that sets
    /// one refused it (`401 invalid_token`) and only a fixed token could reach it.
    @Test func tokensAreDrawnWithTheServersPrefix() async throws {
        let prefix = "tenant-a."
        try await TestServer(["KMS_TOKEN_PREFIX": prefix]).run { server in
            let base = "http://127.0.0.1:\(server.port ?? 0)"
            let kms = try KMSClient(
                KMSClientConfiguration(baseURL: base, tokenPrefix: prefix, insecureTrustAnyServer: true))
            #expect(kms.token.hasPrefix(prefix))
            #expect(try await kms.random(bytes: 4).count == 4)
            #expect(try await kms.rotateToken().hasPrefix(prefix))
            // A token of the caller's that lacks the prefix is refused here, before anything is sent.
            let unfit = await #expect(throws: KMSClientError.self) {
                try await kms.rotateToken(to: String(repeating: "t", count: 40))
            }
            #expect("\(String(describing: unfit))".contains("does not start with the token prefix"))
            #expect(!"\(String(describing: unfit))".contains(prefix), "the prefix is not repeated")
            #expect(try await kms.rotateToken(to: prefix + String(repeating: "u", count: 40)).hasPrefix(prefix))
            let unprefixed = try KMSClient(KMSClientConfiguration(baseURL: base, insecureTrustAnyServer: true))
            let refused = await #expect(throws: KMSClientError.self) { try await unprefixed.connect() }
            #expect(refused?.code == "invalid_token", "\(String(describing: refused))")
            #expect(refused?.errorCode == .invalidToken && KMSClientError.protocolViolation("x").errorCode == nil)
            // A fixed token must fit the prefix; a prefix outside the token alphabet is refused.
            #expect(throws: KMSClientError.self) {
                try KMSClient(
                    KMSClientConfiguration(
                        baseURL: base, token: String(repeating: "t", count: 40), tokenPrefix: prefix,
                        insecureTrustAnyServer: true))
            }
            #expect(throws: KMSClientError.self) {
                try KMSClient(
                    KMSClientConfiguration(baseURL: base, tokenPrefix: "a/b", insecureTrustAnyServer: true))
            }
        }
    }

    /// Runs `call` `count` times at once; what each threw (nil: it succeeded).
    static func failures(of count: Int, _ call: @escaping @Sendable () async throws -> Void) async -> [(any Error)?] {
        await withTaskGroup(of: (any Error)?.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        try await call()
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            return await group.reduce(into: [(any Error)?]()) { $0.append($1) }
        }
    }

    /// A review: calls queued behind a key exchange that failed each made one of their own, one after
    /// another, so a hundred calls to a server that does not answer failed one transport deadline apart.
    /// They now share the failure of the attempt they waited for, as `TransportNeverSent` (nothing of
    /// theirs left); a later call tries again.
    @Test(.timeLimit(.minutes(2))) func callsWaitingForAFailedKeyExchangeShareItsFailure() async throws {
        let transport = UnreachableTransport()
        let kms = try KMSClient(
            KMSClientConfiguration(baseURL: "http://127.0.0.1:9", insecureTrustAnyServer: true), transport: transport)
        transport.releaseWhen.withLock { $0 = { kms.parkedAtTheGate >= 19 } }
        let errors = await Self.failures(of: 20) { _ = try await kms.random(bytes: 1) }
        #expect(transport.sends == 1, "\(transport.sends) key exchanges for 20 calls")
        // The call that started the exchange never sent its own request either (a review: it got
        // `TransportNoAnswer`, "may have been carried out").
        let shared = errors.compactMap { $0 as? TransportNeverSent }
        #expect(shared.count == 20 && shared.allSatisfy { $0.underlying is UnreachableTransport.Unreachable })
        transport.releaseWhen.withLock { $0 = { true } }
        await #expect(throws: TransportNeverSent.self) { _ = try await kms.random(bytes: 1) }
        #expect(transport.sends == 2, "a later call tries on its own")
        // `connect()`'s own request is the exchange: its failure is the exchange's.
        await #expect(throws: TransportNoAnswer.self) { try await kms.connect() }
    }

    /// The same review's second look: a key exchange whose task was cancelled in flight fails as "no
    /// answer" (AsyncHTTPClient's cancellation comes through the transport so), and the calls that waited
    /// for it must not take that as theirs: they make their own attempt.
    @Test(.timeLimit(.minutes(2))) func aCancelledKeyExchangeIsNotSharedWithTheCallsBehindIt() async throws {
        let transport = UnreachableTransport(firstWaitsForCancellation: true)
        let kms = try KMSClient(
            KMSClientConfiguration(baseURL: "http://127.0.0.1:9", insecureTrustAnyServer: true), transport: transport)
        transport.releaseWhen.withLock { $0 = { kms.parkedAtTheGate >= 4 } }
        let first = Task { _ = try await kms.random(bytes: 1) }
        while transport.sends < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let waiting = Task { await Self.failures(of: 5) { _ = try await kms.random(bytes: 1) } }
        while kms.parkedAtTheGate < 5 { try await Task.sleep(for: .milliseconds(5)) }
        first.cancel()
        _ = await first.result
        let errors = await waiting.value
        #expect(transport.sends == 2, "one attempt of their own after the cancelled one")
        #expect(
            errors.allSatisfy { error in (error as? TransportNeverSent)?.underlying is UnreachableTransport.Unreachable
            },
            "\(errors)")
    }

    /// A sealed `replay_detected` refused its seq, and the server slid nothing for it (protocol-v1 section
    /// 9): the client's idea of the session's expiry does not move either (a review found it slid).
    @Test func aRefusedSeqDoesNotSlideTheSession() async throws {
        try await TestServer(["KMS_SESSION_SLIDING": "true"]).run { server in
            let transport = DoubleSendTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            transport.marksResent.withLock { $0 = false }
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            let before = try #require(kms.state.withLock { $0.session?.localExpiry })
            try await Task.sleep(for: .milliseconds(100))
            transport.twice.withLock { $0 = [WirePath.random] }
            let refused = await #expect(throws: KMSClientError.self) { _ = try await kms.random(bytes: 1) }
            #expect(refused?.code == "replay_detected")
            #expect(kms.state.withLock { $0.session?.localExpiry } == before)
            _ = try await kms.random(bytes: 1)
            #expect(try #require(kms.state.withLock { $0.session?.localExpiry }) > before)
        }
    }

    /// A sealed `server_busy` may have left its seq unrecorded (docs/protocol.md section 6): the client's idea
    /// of the session's expiry does not slide for it (a review; untested until a review of the tests).
    @Test func aSealedServerBusyDoesNotSlideTheSession() async throws {
        let store = ListFailingKeyStore()
        var server = try TestServer(["KMS_SESSION_SLIDING": "true"])
        server.dependencies.keyStore = store
        try await server.run { server in
            let kms = try client(server.port)
            _ = try await kms.connect()
            let before = try #require(kms.state.withLock { $0.session?.localExpiry })
            try await Task.sleep(for: .milliseconds(100))
            store.failing.withLock { $0 = "test: the key store is gone" }
            let refused = await #expect(throws: KMSClientError.self) { _ = try await kms.listKeys() }
            #expect(refused?.code == "server_busy")
            #expect(kms.state.withLock { $0.session?.localExpiry } == before)
            store.failing.withLock { $0 = nil }
            _ = try await kms.listKeys()
            #expect(try #require(kms.state.withLock { $0.session?.localExpiry }) > before)
        }
    }

    /// An answer to an earlier-sent call that arrives after a later call's does not move the local expiry
    /// back: each answer slides it from its own request's sending, and the later one counts (a review).
    @Test func aLateAnswerDoesNotMoveTheExpiryBack() async throws {
        try await TestServer(["KMS_SESSION_SLIDING": "true"]).run { server in
            let transport = DelayingTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            transport.delayNext.withLock { $0 = (WirePath.random, .seconds(1)) }
            let slow = Task { try await kms.random(bytes: 1) }
            for await _ in transport.delayed { break }  // its request is sent; its answer is held
            try await Task.sleep(for: .milliseconds(50))
            _ = try await kms.random(bytes: 2)
            let afterLater = try #require(kms.state.withLock { $0.session?.localExpiry })
            _ = try await slow.value
            #expect(kms.state.withLock { $0.session?.localExpiry } == afterLater)
        }
    }

    /// The local expiry is counted from before the key exchange was sent, not from its answer: a slow
    /// answer must not make the client believe in a session the server ends earlier (a review).
    @Test func theExpiryIsCountedFromBeforeTheKeyExchange() async throws {
        try await TestServer().run { server in
            let transport = DelayingTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            let delay = Duration.seconds(5)
            transport.delayNext.withLock { $0 = (WirePath.keyExchange, delay) }
            let before = ContinuousClock.now
            let info = try await kms.connect()
            let local = try #require(kms.state.withLock { $0.session?.localExpiry })
            // Counted from the answer it would be at least `delay` later than this; the slack is what the
            // exchange's preparation (session init, RSA encryption) may take on a loaded machine.
            let latest = before + .milliseconds(info.ttlMs) - .seconds(1) + (delay - .seconds(1))
            #expect(local < latest, "\(local) is not before \(latest)")
        }
    }

    /// The last client review: a call that found one session and, having waited at the gate while
    /// another change made a new one, was sealed under the new one judged the server's `unknown_session`
    /// by the old: it renewed nothing, sent again under the session the server had forgotten, and an
    /// idempotent call failed instead of being made once more in a new session. Here the call waits
    /// behind a token rotation, and a `connect()` queued behind that goes first (changes before calls).
    @Test(.timeLimit(.minutes(2))) func aRefusalIsJudgedByTheSessionTheCallWasSealedUnder() async throws {
        let test = try TestServer(["KMS_SESSION_TTL_MS": "60000"])
        try await test.run { server in
            let transport = HookTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            let flags = HookTransport.Flags()
            transport.before.withLock {
                $0 = { request in
                    if request.target == WirePath.rotateToken {
                        flags.set("held")
                        while !flags.isSet("released") { try? await Task.sleep(for: .milliseconds(5)) }
                    }
                    // The server forgets every session (the one just made too) before the call arrives.
                    if request.target == WirePath.random, flags.set("forgotten") {
                        test.clock.advance(milliseconds: 61_000)
                    }
                    return nil
                }
            }
            let rotation = Task { try await kms.rotateToken() }
            while !flags.isSet("held") { try await Task.sleep(for: .milliseconds(5)) }
            let call = Task { try await kms.random(bytes: 4) }
            while kms.parkedAtTheGate < 1 { try await Task.sleep(for: .milliseconds(5)) }
            let exchange = Task { try await kms.connect() }
            while kms.parkedAtTheGate < 2 { try await Task.sleep(for: .milliseconds(5)) }
            flags.set("released")
            _ = try await rotation.value
            let second = try await exchange.value.sessionId
            #expect(try await call.value.count == 4)
            #expect(flags.isSet("forgotten"))
            #expect(kms.sessionId != second, "the call renewed the session it was refused under")
        }
    }

    /// A plain `401 unknown_session`, as a server that no longer knows the session answers.
    static let sessionGone = TransportResponse(
        status: 401, headers: [],
        body: Data(#"{"error":{"code":"unknown_session","message":"gone","requestId":"r"}}"#.utf8))

    /// A connected client whose requests pass through a `HookTransport`, and its first session's id.
    func hookedClient(_ port: Int?) async throws -> (HookTransport, KMSClient, String) {
        let transport = HookTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(port ?? 0)"))
        let kms = try client(port, transport: transport)
        return (transport, kms, try await kms.connect().sessionId)
    }

    /// An answer still arriving under a session this client marked ended (the server said it was gone)
    /// does not revive it: the next call makes a new session rather than sealing under the old one
    /// until its slid expiry (the last client review; `Session.ended` had no test of its own).
    @Test(.timeLimit(.minutes(2))) func anAnswerUnderAnEndedSessionDoesNotReviveIt() async throws {
        try await TestServer(["KMS_SESSION_SLIDING": "true"]).run { server in
            let (transport, kms, first) = try await hookedClient(server.port)
            let flags = HookTransport.Flags()
            transport.before.withLock {
                $0 = { request in
                    if request.target == WirePath.random, flags.set("held") {
                        while !flags.isSet("released") { try? await Task.sleep(for: .milliseconds(5)) }
                    }
                    return request.target == WirePath.generateKey ? Self.sessionGone : nil
                }
            }
            let inFlight = Task { try await kms.random(bytes: 4) }
            while !flags.isSet("held") { try await Task.sleep(for: .milliseconds(5)) }
            let refused = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            #expect(refused?.code == "unknown_session")
            flags.set("released")
            #expect(try await inFlight.value.count == 4)
            _ = try await kms.random(bytes: 4)
            #expect(kms.sessionId != first, "the session the server said was gone was used again")
        }
    }

    /// A review: a token rotation refused `unknown_session` (the server restarted on its in-memory store)
    /// left the session live here, so every rotation failed alike until its local expiry. It ends it, as
    /// any call's `unknown_session` does: the next call makes a new session, and a rotation then works.
    @Test(.timeLimit(.minutes(2))) func aRotationRefusedUnknownSessionEndsTheSession() async throws {
        try await TestServer().run { server in
            let (transport, kms, first) = try await hookedClient(server.port)
            let flags = HookTransport.Flags()
            transport.before.withLock {
                $0 = { request in
                    request.target == WirePath.rotateToken && flags.set("refused") ? Self.sessionGone : nil
                }
            }
            let refused = await #expect(throws: KMSClientError.self) { try await kms.rotateToken() }
            #expect(refused?.code == "unknown_session")
            _ = try await kms.rotateToken()
            #expect(kms.sessionId != first, "the session the server said was gone was used again")
        }
    }

    /// The timer's rotation is made alone, as a session change, and may wait behind another: a tick
    /// that found one session live must not rotate the token of one made while it waited (after
    /// `close()`, which no longer stops a rotation waiting at the gate, that session is not the timer's;
    /// the last read of the client's diff; the check had no test of its own). Here the tick comes while a
    /// `connect()` with a fixed token ends the old session first, and waits for it.
    @Test(.timeLimit(.minutes(2))) func aRotationTickRotatesOnlyTheSessionLiveAtIt() async throws {
        try await TestServer().run { server in
            let transport = HookTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try KMSClient(
                KMSClientConfiguration(
                    baseURL: transport.base.baseURL, token: ClientToken.issue(prefix: nil),
                    insecureTrustAnyServer: true),
                transport: transport)
            _ = try await kms.connect()
            let flags = HookTransport.Flags()
            transport.before.withLock {
                $0 = { request in
                    if request.method == "DELETE", request.target == WirePath.session, flags.set("held") {
                        while !flags.isSet("released") { try? await Task.sleep(for: .milliseconds(5)) }
                    }
                    if request.target == WirePath.rotateToken { flags.set("rotated") }
                    return nil
                }
            }
            let connecting = Task { try await kms.connect() }
            while !flags.isSet("held") { try await Task.sleep(for: .milliseconds(5)) }
            // One tick, waiting at the gate; then a timer whose first tick is 30 s away replaces its timer
            // (the tick's rotation, in a task of its own, waits on).
            kms.startTokenRotation(every: .milliseconds(500))
            while kms.parkedAtTheGate < 1 { try await Task.sleep(for: .milliseconds(5)) }
            kms.startTokenRotation(every: .seconds(30))
            flags.set("released")
            _ = try await connecting.value
            // `close()` is a change too, queued behind the tick's: when it returns, the tick has had its turn
            // (a review: a sleep here could pass before the tick had run).
            try await kms.close()
            #expect(!flags.isSet("rotated"), "the tick rotated the token of a session made after it")
        }
    }

    /// An init that names another key-exchange algorithm, or a fingerprint that is not its own key's, is a
    /// server this client does not know how to talk to: refused before the key exchange (a Left item: the
    /// `algorithm` field was not read).
    @Test(arguments: [("algorithm", "RSA-OAEP-1"), ("fingerprint", "SHA256:" + String(repeating: "0", count: 64))])
    func anInitThatIsNotProtocolV1IsRefused(field: String, value: String) async throws {
        try await TestServer().run { server in
            let transport = HookTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let flags = HookTransport.Flags()
            transport.before.withLock {
                $0 = { [base = transport.base] request in
                    if request.target == WirePath.keyExchange { flags.set("exchanged") }
                    guard request.target == WirePath.sessionInit, var answer = try? await base.send(request),
                        var object = try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any]
                    else { return nil }
                    object[field] = value
                    answer.body = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
                    return answer
                }
            }
            let kms = try client(server.port, transport: transport)
            let refused = await #expect(throws: KMSClientError.self) { try await kms.connect() }
            #expect("\(refused.map { "\($0)" } ?? "")".contains(field == "algorithm" ? "RSA-OAEP-1" : "fingerprint"))
            #expect(!flags.isSet("exchanged"))
            // A key other than the pinned one is reported as such, whatever else its init says (a review).
            let pinned = try client(
                server.port, fingerprint: "SHA256:" + String(repeating: "a", count: 64), transport: transport)
            await Self.expectMismatch(pinned)
        }
    }

    @Test func typedAPIEndToEnd() async throws {
        try await TestServer().run { server in
            let kms = try client(server.port, fingerprint: TestServer.identity.fingerprint.uppercased())
            let info = try await kms.connect()
            #expect(info.fingerprint == TestServer.identity.fingerprint)
            let key = try await kms.generateKey(alias: "client")
            let sealed = try await kms.encrypt(key: "client", plaintext: Data("x".utf8), aad: Data("a".utf8))
            #expect(
                try await kms.decrypt(ciphertext: sealed.ciphertext, aad: Data("a".utf8)).plaintext == Data("x".utf8))
            #expect(try await kms.rotateKey(key.keyId).version == 2)
            #expect(try await kms.rewrap(ciphertext: sealed.ciphertext, aad: Data("a".utf8)).version == 2)
            let dataKey = try await kms.dataKey(key: key.keyId, bytes: 24)
            #expect(dataKey.plaintext.count == 24)
            #expect(try await kms.key("client").activeVersion == 2)
            #expect(try await kms.listKeys(limit: 5).keys.count == 1)
            #expect(try await kms.random(bytes: 7).count == 7)
            let old = kms.token
            #expect(try await kms.rotateToken() != old)
            let own = "own_" + UUID().uuidString + UUID().uuidString
            #expect(try await kms.rotateToken(to: own) == own)
            let refused = await #expect(throws: KMSClientError.self) { try await kms.generateKey(alias: "client") }
            #expect(refused?.code == "alias_in_use")
            try await kms.close()
        }
    }

    @Test func oneClientIsSafeFromManyTasks() async throws {
        try await TestServer().run { server in
            // 401 calls through one pool of a few connections: on a loaded CI machine the last ones
            // wait in the pool longer than the client's 30 s default, which is not what this tests.
            let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)", timeout: .seconds(180))
            let kms = try client(server.port, transport: transport)
            let key = try await kms.generateKey()
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let message = Data("message \(index)".utf8)
                        let sealed = try await kms.encrypt(key: key.keyId, plaintext: message)
                        return try await kms.decrypt(ciphertext: sealed.ciphertext).plaintext == message
                    }
                }
                group.addTask {
                    _ = try await kms.rotateToken(); return true
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.count == 201 && results.allSatisfy { $0 })
        }
    }

    @Test func expiredSessionsAreReestablishedForSafeCallsOnly() async throws {
        let test = try TestServer(["KMS_SESSION_TTL_MS": "60000"])
        try await test.run { server in
            let kms = try client(server.port)
            let key = try await kms.generateKey()
            let first = try #require(kms.sessionId)
            test.clock.advance(milliseconds: 61_000)  // the server forgets the session; the client cannot know
            _ = try await kms.encrypt(key: key.keyId, plaintext: Data())
            #expect(kms.sessionId != first)
            test.clock.advance(milliseconds: 61_000)
            // Generating is not repeated blindly: the caller sees the refusal, the next call works.
            let refused = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            #expect(refused?.code == "unknown_session")
            // ... and the next call makes a new session at once (found in a review: it failed until
            // the client's own idea of the session's expiry passed, 15 minutes by default).
            let second = try #require(kms.sessionId)
            _ = try await kms.generateKey()
            #expect(kms.sessionId != second)
        }
    }

    @Test func aMismatchingServerKeyIsRefusedBeforeAnySecret() async throws {
        try await TestServer().run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(
                server.port, fingerprint: "SHA256:" + String(repeating: "0", count: 64), transport: spy)
            await Self.expectMismatch(kms)
            #expect(spy.targets == ["/session/init"])
        }
    }

    @Test(arguments: [Tamper.flipCiphertext, .changeStatus, .replayEarlierResponse, .stripSeal, .forgePlainError])
    func tamperedResponsesAreRefused(_ tamper: Tamper) async throws {
        try await TestServer().run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: spy)
            _ = try await kms.random(bytes: 4)
            spy.tamper.withLock { $0 = tamper }
            let error = await #expect(throws: KMSClientError.self) { try await kms.random(bytes: 4) }
            guard case .protocolViolation = error else {
                Issue.record("expected a protocol violation, got \(String(describing: error))")
                return
            }
            // To a change, the same answer cannot say it was not made (a review: a caller would make it again).
            spy.tamper.withLock { $0 = tamper }
            let created = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            guard case .outcomeUnknown = created else {
                Issue.record("expected an unknown outcome, got \(String(describing: created))")
                return
            }
        }
    }
}

extension ClientTests {
    /// A server that sends its answer's head and then trickles its body cannot hold a call past
    /// the transport's deadline (AsyncHTTPClient's own timeout ends with the head).
    @Test func aTricklingResponseBodyMeetsTheDeadline() async throws {
        let listener = try StallingListener(trickle: .milliseconds(200))
        let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(listener.port)", timeout: .seconds(1))
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) {
            _ = try await transport.send(TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        }
        let waited = ContinuousClock.now - started
        #expect(waited < .seconds(60), "\(waited)")  // not the 90 s read timeout; loose for a loaded test run
        listener.close()
    }

    /// A keep-alive connection the server closed as the next request was written (its header
    /// deadline) costs nothing: the request is sent once more on a new connection.
    @Test func aConnectionClosedAsItIsReusedIsRetriedOnce() async throws {
        let listener = try ClosingListener()
        // One connection per host, so the second request surely reuses the first connection.
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(listener.port)", client: client)
        for target in ["/first", "/second", "/third"] {
            let response = try await transport.send(
                TransportRequest(method: "GET", target: target, headers: [], body: nil))
            #expect(response.status == 200, "\(target)")
            // What lets the client tell "refused" from "the first send may have run" (`outcomeUnknown`).
            #expect(response.resent == (target == "/second"), "\(target)")
        }
        #expect(listener.requests == 4)  // the second request was sent twice
        try await client.shutdown()
        listener.close()
    }

    /// A request the transport had to send twice (its first connection closed before any answer)
    /// and whose first send took effect: the resend's refusal does not read as "not done". A create
    /// is "outcome unknown" (and did happen); an encrypt is simply made again with a new seq; a key
    /// exchange is made again with a new token. Before, the create read `replay_detected`.
    /// A review finding: a change whose answer was lost (the connection dropped after the server read
    /// it, or the resend could not connect) was reported as "cannot reach the server", and running the
    /// command again rotated twice. Now it is an unknown outcome; a call that only computes fails plainly.
    @Test func aLostAnswerToAChangeIsAnUnknownOutcome() async throws {
        try await TestServer().run { server in
            let transport = LostAnswerTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            transport.lose.withLock { $0 = [WirePath.generateKey] }
            let created = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            guard case .outcomeUnknown(let what) = created else {
                Issue.record("not an unknown outcome: \(String(describing: created))")
                return
            }
            #expect(what.contains("read the state"))
            let keys = try await kms.listKeys()
            #expect(keys.keys.count == 1, "the lost answer's key exists")
            transport.lose.withLock { $0 = [WirePath.encrypt] }
            await #expect(throws: HTTPClientError.self) {
                _ = try await kms.encrypt(key: keys.keys[0].keyId, plaintext: Data("photo".utf8))
            }
            // A call its transport never sent says so, wrapped as the key exchange's is (it threw the bare
            // error, and a CLI judging that called a resend's failure after a first send "never sent").
            transport.refuse.withLock { $0 = [WirePath.encrypt, WirePath.generateKey] }
            let never = await #expect(throws: TransportNeverSent.self) {
                _ = try await kms.encrypt(key: keys.keys[0].keyId, plaintext: Data("photo".utf8))
            }
            #expect(never?.underlying is IOError, "wrapped once: \(String(describing: never))")
            await #expect(throws: TransportNeverSent.self) { try await kms.generateKey() }
            #expect(try await kms.listKeys().keys.count == 1, "the change never sent was not made")

            // Once a send reached the server, a later turn that cannot be sent does not make the call "never
            // sent" (a review): an idempotent change answered with a forged `unknown_session` was made, and
            // whatever stops its second turn, it is an unknown outcome.
            let keyId = keys.keys[0].keyId
            let disable = WirePath.target(WirePath.disableKey, ["keyId": keyId])
            let enable = WirePath.target(WirePath.enableKey, ["keyId": keyId])
            func expectUnknownOutcome(_ change: @Sendable () async throws -> Void) async {
                let failed = await #expect(throws: KMSClientError.self) { try await change() }
                guard case .outcomeUnknown = failed else {
                    Issue.record("not an unknown outcome: \(String(describing: failed))")
                    return
                }
            }
            // The new key exchange refused a connection.
            transport.forgeUnknownSession.withLock { $0 = [disable] }
            transport.refuse.withLock { $0 = [WirePath.sessionInit] }
            await expectUnknownOutcome { _ = try await kms.disableKey(keyId) }
            #expect(try await kms.key(keyId).state == "disabled", "the change was made")
            // The new session's init refused (a forged plain 503): not "refused before anything was done".
            transport.forgeUnknownSession.withLock { $0 = [enable] }
            transport.fail.withLock { $0 = [WirePath.sessionInit] }
            await expectUnknownOutcome { _ = try await kms.enableKey(keyId) }
            // The second send refused again in plain words (as forgeable as the first).
            _ = try await kms.connect()
            transport.forgeUnknownSession.withLock { $0 = [disable, disable] }
            await expectUnknownOutcome { _ = try await kms.disableKey(keyId) }
            #expect(transport.forgeUnknownSession.withLock { $0.isEmpty }, "both turns were refused")
            // The second `unknown_session` still ended this client's session: the next call makes a new one.
            let initsBefore = transport.sends.withLock { $0[WirePath.sessionInit] ?? 0 }
            #expect(try await kms.key(keyId).state == "disabled", "the change was made")
            #expect(transport.sends.withLock { $0[WirePath.sessionInit] ?? 0 } == initsBefore + 1)
            // A computation fails with the transport's error: neither "never sent" nor "outcome unknown".
            _ = try await kms.connect()
            transport.forgeUnknownSession.withLock { $0 = [WirePath.encrypt] }
            transport.refuse.withLock { $0 = [WirePath.sessionInit] }
            await #expect(throws: IOError.self) { _ = try await kms.encrypt(key: keyId, plaintext: Data("x".utf8)) }
        }
        // Only failures before any connection carried the request count as "never sent".
        #expect(HTTPTransport.neverSent(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
        #expect(HTTPTransport.neverSent(HTTPClientError.connectTimeout))
        #expect(!HTTPTransport.neverSent(HTTPClientError.remoteConnectionClosed))
        #expect(!HTTPTransport.neverSent(HTTPClientError.deadlineExceeded))
        #expect(!HTTPTransport.neverSent(IOError(errnoCode: ECONNRESET, reason: "read")))
    }

    /// A review finding: a URL `URLComponents` cannot parse (a password with a space or a bare `%`)
    /// was shown whole, password included, in the CLI's notes and errors.
    @Test func aURLsPasswordIsNeverShown() {
        for url in ["http://kms:pa ss%@127.0.0.1:3000", "http://kms:secret@127.0.0.1:3000"] {
            let shown = KMSClientConfiguration(baseURL: url).redactedBaseURL
            #expect(
                !shown.contains("pa ss") && !shown.contains("secret") && shown.contains("127.0.0.1:3000"), "\(shown)")
        }
        #expect(KMSClientConfiguration(baseURL: "http://127.0.0.1:3000").redactedBaseURL == "http://127.0.0.1:3000")
    }

    /// A review finding: types that carry a token, an access key's secret or the master key printed
    /// them whole with `"\(value)"` or `dump` (none was printed so, but nothing kept it from being).
    /// A key file another user owns is not taken unless named on purpose: a `./data/admin.key` in a folder
    /// they control signed for a review's client with only a note. Root is told, not refused. (Owners need
    /// `chown`: as root only.)
    @Test(.enabled(if: geteuid() == 0, "not root: cannot give a file another owner"))
    func aKeyFileAnotherUserOwnsIsNotTakenUnlessNamed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-keyown-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("admin.key")
        try Data(ClientKeyFile.pem(Curve25519.Signing.PrivateKey()).utf8).write(to: file)
        #expect(chmod(file.path, 0o600) == 0 && chown(file.path, 1234, 1234) == 0)
        let fallback = ["KMS_ADMIN_KEY_FILE": file.path, "HOME": folder.path]
        let refused = #expect(throws: ClientKeyLookup.Failure.self) {
            _ = try ClientKeyLookup.find(environment: fallback, user: 5678)
        }
        #expect(refused?.description.contains("belongs to uid 1234") == true, "\(String(describing: refused))")
        // Named on purpose: taken, with a note; and root is told.
        let named = try ClientKeyLookup.find(environment: ["KMS_CLIENT_KEY_FILE": file.path], user: 5678)
        #expect(named?.notice?.contains("belongs to uid 1234") == true)
        let asRoot = try ClientKeyLookup.find(environment: fallback, user: 0)
        #expect(
            asRoot?.notice?.contains("belongs to uid 1234") == true && asRoot?.notice?.contains("admin key") == true)
        // Its own user's: no note about the owner.
        #expect(chown(file.path, 5678, 5678) == 0)
        #expect(try ClientKeyLookup.find(environment: fallback, user: 5678)?.notice?.contains("belongs to") == false)
    }

    /// A default client key that is there but cannot be reached (a link to nothing: a volume not mounted) is
    /// an error, not "no key": the search went on to the server's admin key beside it (a review).
    @Test func anUnreachableDefaultKeyIsNotSkipped() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-keygone-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent(".config/kms"), withIntermediateDirectories: true)
        let admin = folder.appendingPathComponent("admin.key")
        try Data(ClientKeyFile.pem(Curve25519.Signing.PrivateKey()).utf8).write(to: admin)
        #expect(chmod(admin.path, 0o600) == 0)
        let environment = ["KMS_ADMIN_KEY_FILE": admin.path, "HOME": folder.path]
        #expect(
            try ClientKeyLookup.find(environment: environment, user: geteuid())?.notice?.contains("admin key") == true)
        try FileManager.default.createSymbolicLink(
            atPath: folder.appendingPathComponent(".config/kms/client.key").path,
            withDestinationPath: folder.appendingPathComponent("unmounted/client.key").path)
        let refused = #expect(throws: ClientKeyLookup.Failure.self) {
            _ = try ClientKeyLookup.find(environment: environment, user: geteuid())
        }
        #expect(
            refused?.description.contains("link to nothing") == true && refused?.isSetting == false,
            "\(String(describing: refused))")
        // A linked folder whose target is gone, one level up (the review of 7787c82).
        let config = folder.appendingPathComponent(".config/kms")
        try FileManager.default.removeItem(at: config)
        try FileManager.default.createSymbolicLink(
            atPath: config.path, withDestinationPath: folder.appendingPathComponent("unmounted").path)
        let folderGone = #expect(throws: ClientKeyLookup.Failure.self) {
            _ = try ClientKeyLookup.find(environment: environment, user: geteuid())
        }
        #expect(folderGone?.description.contains("\(config.path) leads nowhere") == true)
        // A folder linked to itself (a loop) too (the review of 2c67870: it was taken for absent).
        try FileManager.default.removeItem(at: config)
        try FileManager.default.createSymbolicLink(atPath: config.path, withDestinationPath: config.path)
        let loop = #expect(throws: ClientKeyLookup.Failure.self) {
            _ = try ClientKeyLookup.find(environment: environment, user: geteuid())
        }
        #expect(loop?.description.contains("link to nothing") == true)
        // A key file linked to itself, or through a link to a link to nothing (the review of 649a285: only the
        // first link was followed, and these fell back to the admin key).
        try FileManager.default.removeItem(at: config)
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        let key = config.appendingPathComponent("client.key")
        let dotfiles = folder.appendingPathComponent("dotfiles.key")
        for destination in [key.path, dotfiles.path] {
            try? FileManager.default.removeItem(at: key)
            try FileManager.default.createSymbolicLink(atPath: key.path, withDestinationPath: destination)
            try? FileManager.default.removeItem(at: dotfiles)
            try FileManager.default.createSymbolicLink(
                atPath: dotfiles.path, withDestinationPath: folder.appendingPathComponent("vault/client.key").path)
            let chained = #expect(throws: ClientKeyLookup.Failure.self) {
                _ = try ClientKeyLookup.find(environment: environment, user: geteuid())
            }
            #expect(chained?.description.contains("link to nothing") == true, "\(destination)")
        }
        // A folder of this user's without its search bit (the review of ccd8282: taken for absent). Root
        // passes any mode, so only as another user.
        if geteuid() != 0 {
            try FileManager.default.removeItem(at: key)
            #expect(chmod(config.path, 0o600) == 0)
            defer { chmod(config.path, 0o700) }
            let closed = #expect(throws: ClientKeyLookup.Failure.self) {
                _ = try ClientKeyLookup.find(environment: environment, user: geteuid())
            }
            #expect(closed?.description.contains(config.path) == true)
        }
    }

    @Test func secretsAreLeftOutWhenPrinted() throws {
        let secret = "s3cr3t-value-that-must-not-show"
        var config = try KMSConfiguration(environment: [
            "KMS_MASTER_KEY": Data(repeating: 9, count: 32).base64EncodedString()
        ])
        config.databaseURL = "postgres://kms:\(secret)@db/kms"
        let values: [Any] = [
            RotateTokenRequest(token: secret), RotateTokenResponse(token: secret, expiresAt: "t"),
            AccessKeyCreated(accessKeyId: "AKIA", secretAccessKey: secret, createdAt: "t"),
            TransportRequest(method: "POST", target: "/x", headers: [("X-Client-Token", secret)], body: nil), config,
            HTTPTransport(baseURL: "http://kms:\(secret)@127.0.0.1:3000"),
            try KMSClient(
                KMSClientConfiguration(baseURL: "http://kms:\(secret)@127.0.0.1:3000", insecureTrustAnyServer: true)),
        ]
        for value in values {
            var dumped = ""
            dump(value, to: &dumped)
            for shown in ["\(value)", String(reflecting: value), dumped] {
                #expect(
                    !shown.contains(secret) && !shown.contains(Data(repeating: 9, count: 32).base64EncodedString()),
                    "\(shown)")
            }
        }
    }

    /// A review finding: a `503` to a change (the server's `audit_unavailable` when only the result
    /// entry failed, a database that stopped answering, a proxy's) may come after the change was
    /// made; it was reported as a refusal, and a script that ran the command again rotated twice.
    @Test func aServerFailureToAChangeIsAnUnknownOutcome() async throws {
        try await TestServer().run { server in
            let transport = LostAnswerTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            transport.fail.withLock { $0 = [WirePath.generateKey] }
            let created = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            guard case .outcomeUnknown(let what) = created else {
                Issue.record("not an unknown outcome: \(String(describing: created))")
                return
            }
            #expect(what.contains("503 audit_unavailable") && what.contains("read the state"), "\(what)")
            let keys = try await kms.listKeys()
            #expect(keys.keys.count == 1, "the change was made")
            // A computation so answered is an ordinary failure: repeating it is harmless.
            transport.fail.withLock { $0 = [WirePath.encrypt] }
            let computed = await #expect(throws: KMSClientError.self) {
                _ = try await kms.encrypt(key: keys.keys[0].keyId, plaintext: Data("photo".utf8))
            }
            #expect(computed?.code == "audit_unavailable", "\(String(describing: computed))")
            // A proxy's 504 page, no error body (a review: "protocol violation", exit 1, and the key was made).
            transport.proxyTimeout.withLock { $0 = [WirePath.generateKey] }
            let behindProxy = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            guard case .outcomeUnknown(let proxied) = behindProxy else {
                Issue.record("not an unknown outcome: \(String(describing: behindProxy))")
                return
            }
            #expect(proxied.contains("504") && proxied.contains("read the state"), "\(proxied)")
            #expect(try await kms.listKeys().keys.count == 2, "the change was made")
        }
    }

    /// A review finding: someone on the way forwards a change, then sends a
    /// copy and returns the copy's sealed `replay_detected`. The change ran;
    /// the client must not report a plain failure.
    @Test func aReplayByAnotherOfAChangeIsAnUnknownOutcome() async throws {
        try await TestServer().run { server in
            let transport = DoubleSendTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            transport.marksResent.withLock { $0 = false }
            let kms = try client(server.port, transport: transport)
            _ = try await kms.connect()
            let key = try await kms.generateKey()
            transport.twice.withLock { $0 = [WirePath.rotateKey] }
            let rotated = await #expect(throws: KMSClientError.self) { try await kms.rotateKey(key.keyId) }
            guard case .outcomeUnknown(let what) = rotated else {
                Issue.record("not an unknown outcome: \(String(describing: rotated))")
                return
            }
            #expect(what.contains("read the state"))
            #expect(try await kms.key(key.keyId).activeVersion == 2, "the forwarded copy did rotate it")
            // A read or computation refused so is an ordinary failure: repeating it is harmless.
            transport.twice.withLock { $0 = [WirePath.encrypt] }
            let computed = await #expect(throws: KMSClientError.self) {
                _ = try await kms.encrypt(key: key.keyId, plaintext: Data("photo".utf8))
            }
            #expect(computed?.code == "replay_detected", "\(String(describing: computed))")
            if case .outcomeUnknown = computed { Issue.record("a computation is not an unknown outcome") }
        }
    }

    @Test func aResendsRefusalIsAnUnknownOutcome() async throws {
        try await TestServer().run { server in
            let transport = DoubleSendTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            transport.twice.withLock { $0 = [WirePath.keyExchange] }
            _ = try await kms.connect()
            #expect(transport.sent(WirePath.keyExchange) == 3, "the doubled exchange, then a fresh one")
            let tokens = transport.tokens(WirePath.keyExchange)
            #expect(tokens.count == 3 && tokens[0] == tokens[1] && tokens[2] != tokens[0], "a new token")

            transport.twice.withLock { $0 = [WirePath.generateKey] }
            let created = await #expect(throws: KMSClientError.self) { try await kms.generateKey() }
            guard case .outcomeUnknown(let what) = created else {
                Issue.record("not an unknown outcome: \(String(describing: created))")
                return
            }
            #expect(what.contains("read the state"))
            transport.twice.withLock { $0 = [] }
            let keys = try await kms.listKeys()
            #expect(keys.keys.count == 1, "the first send did create the key")

            transport.twice.withLock { $0 = [WirePath.encrypt] }
            let sealed = try await kms.encrypt(key: keys.keys[0].keyId, plaintext: Data("photo".utf8))
            #expect(transport.sent(WirePath.encrypt) == 3, "the doubled encrypt, then one with a new seq")
            #expect(try await kms.decrypt(ciphertext: sealed.ciphertext).plaintext == Data("photo".utf8))

            // A lifecycle change that is idempotent for a lost session is still not repeated here.
            transport.twice.withLock { $0 = [WirePath.target(WirePath.disableKey, ["keyId": keys.keys[0].keyId])] }
            let disabled = await #expect(throws: KMSClientError.self) { try await kms.disableKey(keys.keys[0].keyId) }
            guard case .outcomeUnknown = disabled else {
                Issue.record("not an unknown outcome: \(String(describing: disabled))")
                return
            }

            // A token rotation that ran leaves the resend's token naming no session (`unknown_session`):
            // unknown too, and the next call starts a new session instead of failing on the old one.
            transport.twice.withLock { $0 = [WirePath.rotateToken] }
            let rotated = await #expect(throws: KMSClientError.self) { try await kms.rotateToken() }
            guard case .outcomeUnknown = rotated else {
                Issue.record("not an unknown outcome: \(String(describing: rotated))")
                return
            }
            _ = try await kms.listKeys()
            // A session end that ran is done, not an error.
            transport.twice.withLock { $0 = [WirePath.session] }
            try await kms.close()
            #expect(transport.sent(WirePath.session) == 3, "the unconfirmed session's end, then the doubled one")
        }
    }

    /// A change done, then the server stopped before answering and came back without its sessions: the
    /// resend is answered `unknown_session`. That is "outcome unknown" for a change (a review: a rotation
    /// made so read "refused", and a caller would rotate again), and a read is made again in a new session.
    @Test func aChangeWhoseResendFindsNoSessionIsAnUnknownOutcome() async throws {
        try await TestServer().run { server in
            let transport = ForgetfulRestartTransport(
                base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try client(server.port, transport: transport)
            let key = try await kms.generateKey().keyId
            transport.forget.withLock { $0 = [WirePath.rotateKey] }
            let rotated = await #expect(throws: KMSClientError.self) { try await kms.rotateKey(key) }
            guard case .outcomeUnknown = rotated else {
                Issue.record("not an unknown outcome: \(String(describing: rotated))")
                return
            }
            #expect(try await kms.key(key).activeVersion == 2, "the rotation did happen")
        }
    }

    /// A call of a cancelled task is not sent, and says so (`CancellationError`), not "outcome unknown".
    @Test func aCancelledTaskSendsNothing() async throws {
        try await TestServer().run { server in
            let kms = try client(server.port)
            _ = try await kms.connect()
            let task = Task { () async throws -> String in
                withUnsafeCurrentTask { $0?.cancel() }
                return try await kms.generateKey().keyId
            }
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await kms.listKeys().keys.isEmpty, "nothing was made")
        }
    }

    /// With a fixed token the doubled key exchange's session is ended (the client holds its key),
    /// so the token is free again and the next exchange with it works.
    @Test func aResentKeyExchangeWithAFixedTokenEndsItsSession() async throws {
        try await TestServer().run { server in
            let transport = DoubleSendTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let token = String(repeating: "t", count: 40)
            let kms = try KMSClient(
                KMSClientConfiguration(baseURL: transport.base.baseURL, token: token, insecureTrustAnyServer: true),
                transport: transport)
            transport.twice.withLock { $0 = [WirePath.keyExchange] }
            _ = try await kms.connect()
            #expect(transport.sent(WirePath.keyExchange) == 3)
            #expect(transport.sent(WirePath.session) == 1, "the unconfirmed session was ended")
            _ = try await kms.generateKey()
        }
    }

    /// `serverKeyConfirmed` (the CLI's trust on first use) is told the key a confirmed exchange proved;
    /// when it throws, the call fails with its error and the new session is ended, freeing its token.
    @Test func aRefusedServerKeyEndsTheNewSession() async throws {
        struct Refused: Error {}
        try await TestServer().run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let token = String(repeating: "k", count: 40)
            let told = Mutex<[String]>([])
            let refusing = try KMSClient(
                KMSClientConfiguration(
                    baseURL: spy.base.baseURL, token: token,
                    serverKeyConfirmed: { fingerprint in
                        told.withLock { $0.append(fingerprint) }
                        throw Refused()
                    }), transport: spy)
            await #expect(throws: Refused.self) { try await refusing.connect() }
            #expect(spy.targets == ["/session/init", "/session/key-exchange", "/session"], "\(spy.targets)")
            #expect(refusing.sessionId == nil)
            let accepting = try KMSClient(
                KMSClientConfiguration(baseURL: spy.base.baseURL, token: token, insecureTrustAnyServer: true))
            let info = try await accepting.connect()
            #expect(told.withLock { $0 } == [info.fingerprint])
        }
    }

    /// A server and an impostor with another identity key, behind one `SwitchingTransport`.
    /// A review's impostor (holding the session key) answered a wrapped data key of "garbage", a data
    /// key of 16 bytes when 32 were asked, one random byte for 16: `encrypt-file` and `rewrap-file`
    /// ended with success for a file no server opens, and `kms random`/`datakey` handed the short bytes
    /// on. The client now checks each answer against itself and against what it asked.
    @Test func answersThatDoNotFitTheirRequestAreRefused() throws {
        let id = "key_AAAAAAAAAAAAAAAAAAAAAA"
        let sealed = String(repeating: "A", count: 40)  // 30 bytes: an IV and a tag at least, as the server asks
        let good = "kms:v1:\(id):2:\(sealed)"
        #expect(NativeCiphertext.keyAndVersion(good)?.keyId == id && NativeCiphertext.keyAndVersion(good)?.version == 2)
        for bad in [
            "garbage", "kms:v1:\(id):0:AAAA", "kms:v1:\(id):02:AAAA", "kms:v1:\(id):+2:AAAA", "kms:v2:\(id):2:A",
            "kms:v1::2:AAAA", "kms:v1:\(id):2:", "kms:v1:\(id):2:AAAA:x", "kms:v1:\(id):2:x", "kms:v1:\(id):2:AAAA",
            "kms:v1:not-a-key:2:\(sealed)", "kms:v1:\(id):2147483648:\(sealed)",
        ] {
            #expect(NativeCiphertext.keyAndVersion(bad) == nil, "\(bad)")
        }
        try KMSClient.checkWrapped(good, keyId: id, version: 2, asked: id)
        try KMSClient.checkWrapped(good, keyId: id, version: 2, asked: "photos")  // an alias names any key
        try KMSClient.checkWrapped(good, keyId: id, version: 2, asked: nil)
        for (text, keyId, version, asked) in [
            ("garbage", id, 2, id), (good, id, 3, id), (good, "key_BBBBBBBBBBBBBBBBBBBBBB", 2, nil),
            (good, id, 2, "key_BBBBBBBBBBBBBBBBBBBBBB"),
        ] as [(String, String, Int, String?)] {
            #expect(throws: KMSClientError.self) {
                try KMSClient.checkWrapped(text, keyId: keyId, version: version, asked: asked)
            }
        }
        try KMSClient.requireLength(Data(count: 32), 32, "data key")
        #expect(throws: KMSClientError.self) { try KMSClient.requireLength(Data(count: 16), 32, "data key") }
        #expect(throws: KMSClientError.self) { try KMSClient.requireLength(Data(count: 17), 16, "random bytes") }
    }

    /// Another identity than the test servers' (a fixed key: generating one blocked a pool thread for seconds).
    static let impostorIdentity = TestIdentity.load(TestIdentity.impostorDERBase64)

    static func withImpostor(
        forgeFirstExchange: Bool = false, _ body: @Sendable (SwitchingTransport) async throws -> Void
    ) async throws {
        var other = try TestServer()
        other.dependencies.identity = impostorIdentity
        let impostor = other
        try await TestServer().run { server in
            try await impostor.run { rebound in
                try await body(
                    SwitchingTransport(
                        HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"),
                        HTTPTransport(baseURL: "http://127.0.0.1:\(rebound.port ?? 0)"),
                        forgeFirstExchange: forgeFirstExchange))
            }
        }
    }

    /// Trust on first use holds for the client's life: after its first confirmed key, a later key exchange
    /// that meets another key (an impostor on the path, reached by one forged plain `unknown_session`) is
    /// `fingerprintMismatch`, and neither hook is asked about it (a review: a hook that only remembered
    /// the key, as the doc advised, let every later exchange trust whichever key answered).
    @Test func trustOnFirstUseHoldsForTheClientsLife() async throws {
        try await Self.withImpostor { transport in
            let told = Mutex<[String]>([])
            let client = try KMSClient(
                KMSClientConfiguration(
                    baseURL: transport.first.baseURL,
                    serverKeyConfirmed: { fingerprint in told.withLock { $0.append(fingerprint) } },
                    serverKeyOffered: { fingerprint in told.withLock { $0.append("offered " + fingerprint) } }),
                transport: transport)
            let met = try await client.connect()
            #expect(try await client.random(bytes: 4).count == 4)
            transport.useSecond.withLock { $0 = true }
            // The impostor knows no session: its plain `unknown_session` makes the client exchange again.
            let error = await #expect(throws: KMSClientError.self) { try await client.random(bytes: 4) }
            guard case .fingerprintMismatch(let expected, let actual) = error else {
                Issue.record("expected fingerprintMismatch, got \(String(describing: error))")
                return
            }
            #expect(expected == met.fingerprint && actual != met.fingerprint)
            #expect(told.withLock { $0 } == ["offered " + met.fingerprint, met.fingerprint])
        }
    }

    /// Within one establishment too: a key accepted when offered, whose exchange a forged plain
    /// `unknown_session` refuses, is the key the retry must meet; an impostor's is `fingerprintMismatch`
    /// and never offered to the hooks (a review: the retry offered the next key as if none had been
    /// accepted).
    @Test func aRetryAfterARefusedExchangeMeetsTheKeyAcceptedBefore() async throws {
        try await Self.withImpostor(forgeFirstExchange: true) { transport in
            let offered = Mutex<[String]>([])
            let client = try KMSClient(
                KMSClientConfiguration(
                    baseURL: transport.first.baseURL,
                    serverKeyOffered: { fingerprint in offered.withLock { $0.append(fingerprint) } }),
                transport: transport)
            let error = await #expect(throws: KMSClientError.self) { try await client.connect() }
            guard case .fingerprintMismatch(let expected, _) = error else {
                Issue.record("expected fingerprintMismatch, got \(String(describing: error))")
                return
            }
            #expect(offered.withLock { $0 } == [expected])
            // And for a later establishment of the same client: still the accepted key, not offered again.
            let again = await #expect(throws: KMSClientError.self) { try await client.connect() }
            guard case .fingerprintMismatch(expected, _) = again else {
                Issue.record("expected fingerprintMismatch, got \(String(describing: again))")
                return
            }
            #expect(offered.withLock { $0 } == [expected])
        }
    }

    /// A server key refused when offered ends the attempt before anything is sent to the server: no key
    /// exchange, so neither the token nor a client signature reaches it (the CLI asks a person there).
    @Test func aServerKeyRefusedWhenOfferedIsSentNothing() async throws {
        struct Refused: Error {}
        try await TestServer().run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let offered = Mutex<[String]>([])
            let confirmed = Mutex<[String]>([])
            let refusing = try KMSClient(
                KMSClientConfiguration(
                    baseURL: spy.base.baseURL, clientKey: Curve25519.Signing.PrivateKey(),
                    serverKeyConfirmed: { fingerprint in confirmed.withLock { $0.append(fingerprint) } },
                    serverKeyOffered: { fingerprint in
                        offered.withLock { $0.append(fingerprint) }
                        throw Refused()
                    }), transport: spy)
            await #expect(throws: Refused.self) { try await refusing.connect() }
            #expect(spy.targets == ["/session/init"], "\(spy.targets)")
            #expect(confirmed.withLock { $0 }.isEmpty && refusing.sessionId == nil)
            // Accepted when offered, then told again once proved: the same key, in that order. The hooks
            // may await (an app asking a person), holding no thread.
            let accepting = try KMSClient(
                KMSClientConfiguration(
                    baseURL: spy.base.baseURL,
                    serverKeyConfirmed: { fingerprint in confirmed.withLock { $0.append(fingerprint) } },
                    serverKeyOffered: { fingerprint in
                        try await Task.sleep(for: .milliseconds(50))
                        offered.withLock { $0.append(fingerprint) }
                    }))
            let info = try await accepting.connect()
            #expect(offered.withLock { $0 } == [info.fingerprint, info.fingerprint])
            #expect(confirmed.withLock { $0 } == [info.fingerprint])
        }
    }

    /// A person who answers after the pending session ended (a review: the prompt asks them to compare
    /// with `kms server-key` on the server, which can take longer than the init lifetime) still gets a
    /// session: the refused exchange took no effect, so the client starts again, once.
    @Test func anAnswerSlowerThanThePendingSessionStartsAgain() async throws {
        let testServer = try TestServer()
        try await testServer.run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let offers = Mutex(0)
            let client = try KMSClient(
                KMSClientConfiguration(
                    baseURL: spy.base.baseURL,
                    serverKeyOffered: { _ in
                        if offers.withLock({ count in
                            count += 1
                            return count
                        }) == 1 {
                            testServer.clock.advance(milliseconds: 60_001)
                        }
                    }), transport: spy)
            _ = try await client.connect()
            #expect(
                spy.targets == ["/session/init", "/session/key-exchange", "/session/init", "/session/key-exchange"],
                "\(spy.targets)")
            #expect(offers.withLock { $0 } == 2)
            #expect(try await client.random(bytes: 4).count == 4)
        }
    }

    /// The transport does not follow a redirect (the token and envelope would go with it).
    @Test func redirectsAreNotFollowed() async throws {
        let listener = try StallingListener(
            answer: "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/x\r\nContent-Length: 0\r\n\r\n")
        let transport = HTTPTransport(baseURL: "http://127.0.0.1:\(listener.port)", timeout: .seconds(5))
        let response = try await transport.send(
            TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        #expect(response.status == 307)
        listener.close()
    }

    /// More calls at once than the server's replay window is wide, with the first one slow: the calls behind
    /// it used to carry the highest seq more than 1024 past it, and the server refused it `replay_detected`
    /// (for a change, "outcome unknown" though it was never done). Now a seq is taken only within 1024 of
    /// the oldest unanswered one: the others wait for the slow call, and every call succeeds.
    @Test(.timeLimit(.minutes(3))) func aSlowCallIsNotPushedOutOfTheReplayWindow() async throws {
        try await TestServer().run { server in
            let transport = HoldFirstTransport(
                base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)", timeout: .seconds(120)),
                target: WirePath.random, until: 1100, atMost: .seconds(2))
            let kms = try client(server.port, transport: transport)
            try await kms.connect()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await kms.random(bytes: 1) }
                while !transport.isHolding { try await Task.sleep(for: .milliseconds(5)) }
                for _ in 0..<1100 { group.addTask { _ = try await kms.random(bytes: 1) } }
                try await group.waitForAll()
            }
            // The others stopped at the window's edge until the held call was answered (1023 of them unless
            // the machine was too busy to answer them within the hold).
            #expect(transport.answeredWhileHolding <= 1023)
            _ = try await kms.random(bytes: 1)
        }
    }

    /// Background token rotation rotates a live session's token and makes no session of its own: an idle
    /// client whose session ended (here by its TTL, on the client's clock) is left without one, where every
    /// tick made a new session before; and a client used again after `close()` rotates again.
    /// A review: `startTokenRotation` called while the timer's rotation was in flight cancelled that
    /// rotation, which ended as an unknown outcome and dropped the session. The rotation in flight finishes.
    @Test(.timeLimit(.minutes(2))) func restartingRotationLetsTheRotationInFlightFinish() async throws {
        try await TestServer().run { server in
            let slow = SlowTargetTransport(
                base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"), target: WirePath.rotateToken,
                delay: .milliseconds(400))
            let kms = try KMSClient(
                KMSClientConfiguration(baseURL: slow.base.baseURL, insecureTrustAnyServer: true), transport: slow)
            try await kms.connect()
            let session = kms.sessionId
            kms.startTokenRotation(every: .milliseconds(50))
            while slow.started == 0 { try await Task.sleep(for: .milliseconds(5)) }
            kms.startTokenRotation(every: .seconds(3600))
            while slow.finished == 0 { try await Task.sleep(for: .milliseconds(5)) }
            _ = try await kms.random(bytes: 1)
            #expect(kms.sessionId == session, "the session was dropped")
            #expect(slow.sends(WirePath.keyExchange) == 1)
            try await kms.close()
        }
    }

    @Test func backgroundRotationNeitherMakesSessionsNorStopsForGood() async throws {
        try await TestServer(["KMS_SESSION_TTL_MS": "1500", "KMS_SESSION_SLIDING": "false"]).run { server in
            let spy = SpyTransport(base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"))
            let kms = try KMSClient(
                KMSClientConfiguration(
                    baseURL: spy.base.baseURL, rotateInterval: .milliseconds(100), insecureTrustAnyServer: true),
                transport: spy)
            try await kms.connect()
            // The client counts the session ended 1 s before the server does: 0.5 s after it was made.
            try await Task.sleep(for: .milliseconds(1500))
            let exchanges = spy.targets.filter { $0 == WirePath.keyExchange }.count
            let rotations = spy.targets.filter { $0 == WirePath.rotateToken }.count
            #expect(exchanges == 1)
            #expect(rotations <= 6, "\(rotations)")
            // Closing a session that has ended (by the client's clock) ends it without making another (it
            // made one, and a timer that ran on), and nothing follows.
            let before = spy.targets
            try await kms.close()
            try await Task.sleep(for: .milliseconds(300))
            // (A rotation that passed its check just before the session ended may still go first.)
            let after = Array(spy.targets.dropFirst(before.count))
            #expect(after.last == WirePath.session && after.filter { $0 == WirePath.session }.count == 1, "\(after)")
            #expect(!after.contains(WirePath.keyExchange) && !after.contains(WirePath.sessionInit), "\(after)")
        }
        try await TestServer().run { server in
            let kms = try KMSClient(
                KMSClientConfiguration(
                    baseURL: "http://127.0.0.1:\(server.port ?? 0)", rotateInterval: .milliseconds(100),
                    insecureTrustAnyServer: true))
            _ = try await kms.random(bytes: 1)
            try await kms.close()
            // A new session after close(): its token is rotated again.
            _ = try await kms.random(bytes: 1)
            let token = kms.token
            let deadline = ContinuousClock.now + .seconds(60)
            while kms.token == token, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(kms.token != token)
            try await kms.close()
        }
    }

    /// A refusal that asks the caller to wait says how long: a sealed `429` (a token rotation over
    /// `KMS_ROTATE_MAX`) and a plain one (`/session/init` over the pending sessions of an address) carry the
    /// server's `Retry-After` in the error. Before, the Swift client dropped it (a last note's Left item).
    /// Only delta-seconds up to a day are believed: the header is outside the seal.
    @Test func aRefusalCarriesTheServersRetryAfter() async throws {
        try await TestServer(["KMS_ROTATE_MAX": "1", "KMS_ROTATE_WINDOW_MS": "30000", "KMS_PENDING_PER_ADDRESS": "1"])
            .run { server in
                let kms = try client(server.port)
                _ = try await kms.rotateToken()
                let sealed = await #expect(throws: KMSClientError.self) { _ = try await kms.rotateToken() }
                // The seconds left, rounded up: 30 unless a loaded machine took a second between the calls.
                #expect(
                    sealed?.errorCode == .rateLimited && (28...30).contains(sealed?.retryAfter ?? 0),
                    "\(String(describing: sealed))")
                #expect(sealed?.description.contains("[retry after \(sealed?.retryAfter ?? 0) s]") == true)
                // The client's own exchange left no pending session; a second client's init holds the only one.
                let holder = try client(server.port)
                _ = try await holder.transport.send(
                    TransportRequest(method: "GET", target: WirePath.sessionInit, headers: [], body: nil))
                let plain = await #expect(throws: KMSClientError.self) {
                    _ = try await self.client(server.port).connect()
                }
                #expect(
                    plain?.errorCode == .tooManyPendingSessions && (58...60).contains(plain?.retryAfter ?? 0),
                    "\(String(describing: plain))")
                try await kms.close()
            }
        func answer(_ status: Int, _ value: String) -> TransportResponse {
            TransportResponse(status: status, headers: [("Retry-After", value)], body: Data())
        }
        #expect(KMSClient.retryAfter(answer(503, "7")) == 7 && KMSClient.retryAfter(answer(429, "86400")) == 86_400)
        for (status, value) in [(429, "86401"), (429, "-1"), (429, "+5"), (429, " 5"), (429, "0x10"), (400, "5")] {
            #expect(KMSClient.retryAfter(answer(status, value)) == nil, "\(status) \(value)")
        }
        #expect(KMSClient.retryAfter(answer(503, "Wed, 21 Oct 2015 07:28:00 GMT")) == nil)
    }

    /// A call held back while the session changes stops waiting when its task is cancelled: one waiting for
    /// a key exchange that does not come back (a server that stopped answering), and one waiting behind a
    /// token rotation. Before, each waited for the change to end, here an hour.
    @Test(.timeLimit(.minutes(2))) func aCallWaitingAtTheGateCanBeCancelled() async throws {
        try await TestServer().run { server in
            for held in [WirePath.keyExchange, WirePath.rotateToken] {
                let transport = HoldFirstTransport(
                    base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)"),
                    target: held, until: .max, atMost: .seconds(3600))
                let kms = try client(server.port, transport: transport)
                let change = Task {
                    if held == WirePath.rotateToken { try await kms.connect() }
                    _ = try await kms.rotateToken()
                }
                while !transport.isHolding { try await Task.sleep(for: .milliseconds(5)) }
                let waiting = Task { try await kms.random(bytes: 1) }
                let start = ContinuousClock.now
                while kms.parkedAtTheGate == 0 {
                    guard ContinuousClock.now - start < .seconds(30) else {
                        Issue.record("the call never parked at the gate")
                        break
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
                waiting.cancel()
                await #expect(throws: CancellationError.self) { try await waiting.value }
                change.cancel()
                _ = await change.result
            }
        }
    }

    /// A call waiting for the window is cancelled like any other: it sends nothing and throws
    /// `CancellationError` (the held call too, its transport cancelled).
    @Test(.timeLimit(.minutes(2))) func aCallWaitingForTheReplayWindowCanBeCancelled() async throws {
        try await TestServer().run { server in
            let transport = HoldFirstTransport(
                base: HTTPTransport(baseURL: "http://127.0.0.1:\(server.port ?? 0)", timeout: .seconds(120)),
                target: WirePath.random, until: .max, atMost: .seconds(3600))
            let kms = try client(server.port, transport: transport)
            try await kms.connect()
            let outcomes = Mutex<[String: Int]>([:])
            let one: @Sendable () async -> Void = {
                let outcome: String
                do {
                    _ = try await kms.random(bytes: 1)
                    outcome = "answered"
                } catch is CancellationError {
                    outcome = "cancelled"
                } catch {
                    outcome = "\(error)"
                }
                outcomes.withLock { $0[outcome, default: 0] += 1 }
            }
            let held = Task { await one() }
            while !transport.isHolding { try await Task.sleep(for: .milliseconds(5)) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<1029 { group.addTask { await one() } }
                while transport.answered < 1023 { try await Task.sleep(for: .milliseconds(10)) }
                try await Task.sleep(for: .milliseconds(200))
                // The waiting calls first: the held call's answer would let them go.
                group.cancelAll()
            }
            held.cancel()
            await held.value
            #expect(outcomes.withLock { $0 } == ["answered": 1023, "cancelled": 7])
        }
    }
}

enum Tamper: Sendable, CustomTestStringConvertible {
    case flipCiphertext, changeStatus, replayEarlierResponse, stripSeal
    /// A plain error only an authenticated server could send sealed (someone on the path forging it).
    case forgePlainError
    var testDescription: String { "\(self)" }
}

/// Holds the first request to `target` until `until` others to it were answered (or none was for
/// `atMost`), as a slow link or a resend after a closed connection holds one call.
final class HoldFirstTransport: KMSTransport {
    let base: HTTPTransport
    let target: String
    let until: Int
    let atMost: Duration
    private struct State {
        var holding = false
        var held = false
        var answered = 0
        var answeredWhileHolding = 0
    }
    private let state = Mutex(State())

    init(base: HTTPTransport, target: String, until: Int, atMost: Duration) {
        (self.base, self.target, self.until, self.atMost) = (base, target, until, atMost)
    }

    var isHolding: Bool { state.withLock { $0.holding } }
    var answeredWhileHolding: Int { state.withLock { $0.answeredWhileHolding } }
    var answered: Int { state.withLock { $0.answered } }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        guard request.target == target else { return try await base.send(request) }
        let hold = state.withLock { state -> Bool in
            guard !state.held else { return false }
            (state.held, state.holding) = (true, true)
            return true
        }
        if hold {
            // Until `until` others were answered, or none was for `atMost` (the others wait for this one).
            var (seen, since) = (0, ContinuousClock.now)
            while case let answered = state.withLock({ $0.answered }), answered < until {
                if answered != seen { (seen, since) = (answered, .now) }
                if ContinuousClock.now - since > atMost { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            state.withLock { state in
                state.holding = false
                state.answeredWhileHolding = state.answered
            }
            return try await base.send(request)
        }
        let response = try await base.send(request)
        state.withLock { $0.answered += 1 }
        return response
    }
}

/// A server that never answers: every send, counted, fails once `releaseWhen` holds (or after 10 s), as
/// `HTTPTransport` fails one it may have sent (`TransportNoAnswer`).
/// With `firstWaitsForCancellation` the first send instead waits until its task is cancelled and fails
/// as AsyncHTTPClient fails a request cancelled in flight: no answer.
final class UnreachableTransport: KMSTransport {
    struct Unreachable: Error {}
    let firstWaitsForCancellation: Bool
    let releaseWhen = Mutex<(@Sendable () -> Bool)?>(nil)
    private let count = Mutex(0)

    init(firstWaitsForCancellation: Bool = false) { self.firstWaitsForCancellation = firstWaitsForCancellation }

    var sends: Int { count.withLock { $0 } }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        let number = count.withLock { count in
            count += 1
            return count
        }
        if number == 1, firstWaitsForCancellation {
            do {
                try await Task.sleep(for: .seconds(60))
            } catch {
                throw TransportNoAnswer(error)
            }
        }
        let started = ContinuousClock.now
        while releaseWhen.withLock({ $0?() }) != true, ContinuousClock.now - started < .seconds(10) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        throw TransportNoAnswer(Unreachable())
    }
}

/// Holds each request to `target` for `delay` before sending it (cancellable, as a slow link is).
final class SlowTargetTransport: KMSTransport {
    let base: HTTPTransport
    let target: String
    let delay: Duration
    private let counts = Mutex((started: 0, finished: 0, sent: [String: Int]()))

    init(base: HTTPTransport, target: String, delay: Duration) {
        (self.base, self.target, self.delay) = (base, target, delay)
    }

    var started: Int { counts.withLock { $0.started } }
    var finished: Int { counts.withLock { $0.finished } }
    func sends(_ target: String) -> Int { counts.withLock { $0.sent[target] ?? 0 } }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        counts.withLock { $0.sent[request.target, default: 0] += 1 }
        guard request.target == target else { return try await base.send(request) }
        counts.withLock { $0.started += 1 }
        defer { counts.withLock { $0.finished += 1 } }
        try await Task.sleep(for: delay)
        return try await base.send(request)
    }
}

/// Runs `before` on each request before sending it (a test's hook into the moment a call leaves); an
/// answer it returns is returned instead of sending the request.
final class HookTransport: KMSTransport {
    let base: HTTPTransport
    let before = Mutex<(@Sendable (TransportRequest) async -> TransportResponse?)?>(nil)

    init(base: HTTPTransport) { self.base = base }

    /// Named flags a hook and its test share.
    final class Flags: Sendable {
        private let names = Mutex<Set<String>>([])
        /// Sets `name`; true if it was not set before.
        @discardableResult func set(_ name: String) -> Bool { names.withLock { $0.insert(name).inserted } }
        func isSet(_ name: String) -> Bool { names.withLock { $0.contains(name) } }
    }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        if let before = before.withLock({ $0 }), let answer = await before(request) { return answer }
        return try await base.send(request)
    }
}

/// Records targets and, when told, tampers with the next sealed response.
/// The first server until `useSecond`, then the second (an impostor on the path); with
/// `forgeFirstExchange`, the first key exchange is answered with a forged plain `unknown_session` and
/// everything after it goes to the second.
final class SwitchingTransport: KMSTransport {
    let first: HTTPTransport
    let second: HTTPTransport
    let useSecond = Mutex(false)
    let forgeFirstExchange: Bool

    init(_ first: HTTPTransport, _ second: HTTPTransport, forgeFirstExchange: Bool = false) {
        (self.first, self.second, self.forgeFirstExchange) = (first, second, forgeFirstExchange)
    }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        let forge = useSecond.withLock { switched in
            guard forgeFirstExchange, !switched, request.target == WirePath.keyExchange else { return false }
            switched = true
            return true
        }
        if forge {
            return TransportResponse(
                status: 401, headers: [("Content-Type", "application/json")],
                body: Data(#"{"error":{"code":"unknown_session","message":"forged","requestId":"x"}}"#.utf8))
        }
        return try await (useSecond.withLock { $0 } ? second : first).send(request)
    }
}

final class SpyTransport: KMSTransport {
    let base: HTTPTransport
    let tamper = Mutex<Tamper?>(nil)
    private let log = Mutex<[String]>([])
    private let last = Mutex<TransportResponse?>(nil)

    init(base: HTTPTransport) { self.base = base }

    var targets: [String] { log.withLock { $0 } }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        log.withLock { $0.append(request.target) }
        var response = try await base.send(request)
        defer { last.withLock { $0 = response } }
        switch tamper.withLock({ $0 }) {
        case .flipCiphertext:
            var envelope = try SealedEnvelope(json: response.body)
            envelope.ciphertext[envelope.ciphertext.startIndex] ^= 1
            response.body = envelope.json
        case .changeStatus:
            response.status = 201
        case .replayEarlierResponse:
            response = last.withLock { $0 } ?? response
        case .stripSeal:
            response.body = Data(#"{"random":"AAAA"}"#.utf8)
        case .forgePlainError:
            response.status = 400
            response.body = Data(#"{"error":{"code":"decryption_failed","message":"forged","requestId":"x"}}"#.utf8)
        case nil:
            break
        }
        return response
    }
}

/// Sends each request whose target is in `lose` and then loses its answer, as a connection that
/// drops after the server read the request does.
final class LostAnswerTransport: KMSTransport {
    let base: HTTPTransport
    let lose = Mutex<Set<String>>([])
    /// Targets whose answer is replaced by a `503` (as a proxy's, or a server's after the change).
    let fail = Mutex<Set<String>>([])
    /// Targets whose answer is replaced by a proxy's `504` page (HTML, no error body).
    let proxyTimeout = Mutex<Set<String>>([])
    /// Targets never sent: their connection refused.
    let refuse = Mutex<Set<String>>([])
    /// Targets sent, whose answer is replaced by a plain `unknown_session` (what anyone on the path can forge),
    /// once for each time a target is listed.
    let forgeUnknownSession = Mutex<[String]>([])
    /// How many requests were made to each target.
    let sends = Mutex<[String: Int]>([:])

    init(base: HTTPTransport) { self.base = base }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        sends.withLock { $0[request.target, default: 0] += 1 }
        if refuse.withLock({ $0.remove(request.target) != nil }) {
            throw TransportNeverSent(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        }
        let response = try await base.send(request)
        let forged = forgeUnknownSession.withLock { targets in
            targets.firstIndex(of: request.target).map { targets.remove(at: $0) } != nil
        }
        if forged {
            let body = #"{"error":{"code":"unknown_session","message":"x","requestId":"r"}}"#
            return TransportResponse(status: 401, headers: [], body: Data(body.utf8))
        }
        if lose.withLock({ $0.remove(request.target) != nil }) {
            throw TransportNoAnswer(HTTPClientError.remoteConnectionClosed)
        }
        if fail.withLock({ $0.remove(request.target) != nil }) {
            let body = #"{"error":{"code":"audit_unavailable","message":"x","requestId":"r"}}"#
            return TransportResponse(status: 503, headers: [], body: Data(body.utf8))
        }
        if proxyTimeout.withLock({ $0.remove(request.target) != nil }) {
            let page = "<html><body><h1>504 Gateway Time-out</h1></body></html>"
            return TransportResponse(status: 504, headers: [("Content-Type", "text/html")], body: Data(page.utf8))
        }
        return response
    }
}

/// Sends each request whose target is in `twice` two times, as the transport does when the first
/// connection closes before an answer, and answers with the second (marked `resent`); once per
/// target, then it sends normally.
final class DoubleSendTransport: KMSTransport {
    let base: HTTPTransport
    let twice = Mutex<Set<String>>([])
    /// False: the second answer comes back as if to one send (an attacker's copy, not our resend).
    let marksResent = Mutex(true)
    private let counts = Mutex<[String: Int]>([:])
    private let sentTokens = Mutex<[String: [String]]>([:])

    init(base: HTTPTransport) { self.base = base }

    func sent(_ target: String) -> Int { counts.withLock { $0[target] ?? 0 } }

    /// The `X-Client-Token` of each send to `target`, in order.
    func tokens(_ target: String) -> [String] { sentTokens.withLock { $0[target] ?? [] } }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        let doubled = twice.withLock { $0.remove(request.target) != nil }
        counts.withLock { $0[request.target, default: 0] += doubled ? 2 : 1 }
        let token = request.headers.first { $0.0 == EnvelopePlacement.tokenHeader }?.1 ?? ""
        sentTokens.withLock { $0[request.target, default: []] += doubled ? [token, token] : [token] }
        guard doubled else { return try await base.send(request) }
        _ = try await base.send(request)
        var response = try await base.send(request)
        response.resent = marksResent.withLock { $0 }
        return response
    }
}

/// Holds the answer to the next request for `delayNext`'s target for its duration, after the server gave
/// it, and says on `delayed` when that request was sent.
final class DelayingTransport: KMSTransport {
    let base: HTTPTransport
    let delayNext = Mutex<(target: String, delay: Duration)?>(nil)
    let delayed: AsyncStream<Void>
    private let sent: AsyncStream<Void>.Continuation

    init(base: HTTPTransport) {
        self.base = base
        (delayed, sent) = AsyncStream.makeStream(of: Void.self)
    }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        let delay = delayNext.withLock { next -> Duration? in
            guard let held = next, held.target == request.target else { return nil }
            next = nil
            return held.delay
        }
        guard let delay else { return try await base.send(request) }
        sent.yield()
        let response = try await base.send(request)
        try await Task.sleep(for: delay)
        return response
    }
}

/// Sends each request whose target is in `forget` once, then answers it as a server that did it,
/// stopped before answering, and came back without its sessions answers the transport's resend: a
/// plain `401 unknown_session`, marked `resent`. Once per target.
final class ForgetfulRestartTransport: KMSTransport {
    let base: HTTPTransport
    let forget = Mutex<Set<String>>([])

    init(base: HTTPTransport) { self.base = base }

    func send(_ request: TransportRequest) async throws -> TransportResponse {
        let forgotten = forget.withLock { $0.remove(request.target) != nil }
        let response = try await base.send(request)
        guard forgotten else { return response }
        let body = #"{"error":{"code":"unknown_session","message":"no such session","requestId":"r"}}"#
        return TransportResponse(
            status: 401, headers: [("Content-Type", "application/json")], body: Data(body.utf8), resent: true)
    }
}
