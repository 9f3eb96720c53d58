import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSTestSupport
import NIOCore
import Synchronization
import Testing

@testable import KMSServer

/// Issue 2: the ground every request stands on.
@Suite struct FoundationTests {
    static let xff = HTTPField.Name("X-Forwarded-For") ?? .accept

    @Test func healthzAnswersFromLoopbackWithSecurityHeaders() async throws {
        try await TestServer().run { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .ok)
            #expect(response.text == #"{"status":"ok"}"#)
            #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
            #expect(response.headers[.cacheControl] == "no-store")
            #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            #expect(response.headers[HTTPField.Name("Strict-Transport-Security")!] == nil)
            #expect((response.headers[HTTPField.Name("X-Request-Id")!]?.count ?? 0) >= 16)
        }
    }

    @Test func productionTurnsOnHSTS() async throws {
        try await TestServer(["KMS_ENV": "production"]).run { client in
            let response = try await client.execute(uri: "/nope", method: .get)
            #expect(
                response.headers[HTTPField.Name("Strict-Transport-Security")!] == "max-age=31536000; includeSubDomains")
        }
    }

    @Test func unknownRoutesAndMethodsArePlainErrors() async throws {
        try await TestServer().run { client in
            let missing = try await client.execute(uri: "/nope", method: .get)
            #expect(missing.status == .notFound && missing.errorCode == "not_found")
            let error = try #require(missing.json["error"] as? [String: Any])
            #expect(
                error["message"] is String
                    && error["requestId"] as? String == missing.headers[HTTPField.Name("X-Request-Id")!])
            let wrongMethod = try await client.execute(uri: "/healthz", method: .post, body: ByteBuffer(string: "{}"))
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.errorCode == "method_not_allowed")
            #expect(wrongMethod.headers[.allow] == "GET")
            // No token check happens before routing.
            let sealedWrongMethod = try await client.execute(uri: "/crypto/random", method: .get)
            #expect(sealedWrongMethod.status == .methodNotAllowed)
            #expect(try await client.execute(uri: "/healthz", method: .put).headers[.contentSecurityPolicy] != nil)
        }
    }

    /// Issue 17: 3,000 requests from a refused address cost a handful of log
    /// lines (two per request before), each counting what it left out.
    @Test func aRefusalFloodCostsFewLogLines() async throws {
        var server = try TestServer(["KMS_WHITELIST": "100.64.0.0/10"])
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        let started = ContinuousClock.now
        try await server.run { client in
            var refused = 0
            for _ in 0..<3000 where try await client.execute(uri: "/healthz", method: .get).status == .forbidden {
                refused += 1
            }
            #expect(refused == 3000)
        }
        let lines = counter.count("refused client address") + counter.count("request")
        // The sampler allows one refusal line (and its request line) per address per 10 s: a loaded
        // machine that takes longer for the 3,000 requests earns more (a loaded full run took 140 s).
        let windows = Int((ContinuousClock.now - started).components.seconds / 10) + 1
        #expect(lines >= 1 && lines <= max(20, 2 * windows + 2), "\(lines) log lines for 3,000 refusals")
    }

    /// A review's `/session/init` flood wrote a request line per `429`, 212 MB in a minute and a half:
    /// those lines are thinned as refusals are, each counting what it left out; other answers are not.
    @Test func aFloodOfBusyAnswersCostsFewLogLines() async throws {
        var server = try TestServer(["KMS_PENDING_PER_ADDRESS": "2"])
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        let started = ContinuousClock.now
        try await server.run { client in
            var busy = 0
            for _ in 0..<1_000
            where try await client.execute(uri: "/session/init", method: .get).status == .tooManyRequests {
                busy += 1
            }
            #expect(busy >= 990)
            for _ in 0..<20 { _ = try await client.execute(uri: "/healthz", method: .get) }
        }
        // One line per address a second: a loaded machine that takes longer earns more.
        let seconds = Int((ContinuousClock.now - started).components.seconds) + 1
        let lines = counter.count("request")
        #expect(lines >= 22 && lines <= 22 + seconds + 2, "\(lines) request lines for 1,000 busy answers")
    }

    /// A probe's 80 KB path of quotes wrote twice its size into the log per request.
    @Test func theRequestLogCapsWhatTheClientWrote() async throws {
        var server = try TestServer()
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        try await server.run { client in
            let path = "/" + String(repeating: "%22", count: 8_000)
            let response = try await client.execute(uri: path, method: .get)
            #expect(response.status == .notFound)
        }
        #expect(counter.count("request") == 1)
        #expect(counter.longestValue("request") <= AuditEvent.maxFieldBytes)
    }

    /// Start-up names store files other users can read, as it names loose folders (a review: only
    /// `kms doctor` failed a 0644 key file or admin key).
    @Test func looseStoreFilesAreWarnedAboutAtStart() async throws {
        var server = try TestServer()
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        let keys = server.config.keyStorePath.appendingPathComponent("keys")
        try FileManager.default.createDirectory(
            at: keys, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Data("{}".utf8).write(to: keys.appendingPathComponent("stray.json"))
        chmod(keys.appendingPathComponent("stray.json").path, 0o644)
        try await server.run { client in
            let status = try await client.execute(uri: "/healthz", method: .get).status
            #expect(status == .ok)
        }
        let message =
            "files or folders of the key store are open to other users of this machine: chmod go-rwx them (kms doctor lists them)"
        #expect(counter.count(message) == 1)
        #expect(counter.values(message, "first").first?.hasSuffix("keys/stray.json") == true)
    }

    /// An instance with client identity off, on a store where clients are enrolled, says it ignores their
    /// grants (a review: one such instance on a shared database made an admin that worked on all).
    @Test func clientAuthOffBesideEnrolledClientsIsWarnedAbout() async throws {
        var server = try TestServer()  // KMS_CLIENT_AUTH=off
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        let registry = ClientRegistry(
            store: try LocalClientStore(folder: server.config.keyStorePath),
            masterKey: try MasterKey(bytes: Data(repeating: 7, count: 32)), clock: SystemClock())
        _ = try await registry.add(
            name: "phone", publicKey: Curve25519.Signing.PrivateKey().publicKey.rawRepresentation, grants: [])
        try await server.run { _ in }
        let message =
            "KMS_CLIENT_AUTH=off on a store with enrolled clients: this instance ignores their grants, whichever instance they enrolled on; give every instance the same setting (docs/identity.md)"
        #expect(counter.values(message, "activeClients") == ["1"])
    }

    /// A review revoked an access key by its secret (printed beside its id) and found the secret in
    /// the request log's path: only name-shaped segments are logged, and only an id in an id's place.
    @Test func theRequestLogHidesWhatIsNotAName() async throws {
        var server = try TestServer()
        let counter = LogCounter()
        server.dependencies.logger = counter.logger
        let secret = "ROmBpktQKhktLj3diNnINw8emzyxtJwgL2ftp5JQ"
        try await server.run { client in
            for (index, (uri, method)) in [
                ("/clients/admin/access-keys/\(secret)/revoke", HTTPRequest.Method.post),
                ("/clients/admin/access-keys/\(secret)/revoke", .get),
                ("/clients/admin/access-keys/AKIAABCDEFGHIJ234567/revoke", .post),
                ("/keys/ROmBpk%2BtQKhkt/metadata", .get), ("/keys/ROmBpk+tQKhkt", .get),
            ].enumerated() {
                // Each from its own address (through the trusted loopback proxy): plain refusals are thinned
                // by address.
                _ = try await client.execute(uri: uri, method: method, headers: [Self.xff: "127.0.0.\(index + 10)"])
            }
        }
        let paths = counter.values("request", "path")
        #expect(
            paths == [
                "/clients/admin/access-keys/{…}/revoke", "/clients/admin/access-keys/{…}/revoke",
                "/clients/admin/access-keys/AKIAABCDEFGHIJ234567/revoke", "/keys/{…}/{…}", "/keys/{…}",
            ], "\(paths)")
        #expect(LoggedPath.of("/keys/photos/tags", template: "/keys/{keyId}/tags", words: []) == "/keys/photos/tags")
        #expect(LoggedPath.of("/" + String(repeating: "a", count: 65), template: nil, words: []) == "/{…}")
        // A second review: a token (43 base64url characters) given as a key, and a secret holding a "/".
        let token = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"
        #expect(LoggedPath.of("/keys/\(token)", template: "/keys/{keyId}", words: []) == "/keys/{…}")
        #expect(
            LoggedPath.of("/keys/key_AAAAAAAAAAAAAAAAAAAAAA", template: "/keys/{keyId}", words: [])
                == "/keys/key_AAAAAAAAAAAAAAAAAAAAAA")
        #expect(
            LoggedPath.of(
                "/clients/admin/access-keys/ROmBpktQ/abc/revoke", template: nil,
                words: ["clients", "access-keys", "revoke"]) == "/clients/{…}/access-keys/{…}/{…}/revoke")
        // A token of the shortest length (32, `openssl rand -hex 16`) given as a key.
        #expect(
            LoggedPath.of("/keys/\(String(repeating: "ab", count: 16))", template: "/keys/{keyId}", words: [])
                == "/keys/{…}")
        // One length rule (`Echo`) for the log, the client library's refusals and the CLI's parse errors.
        let longest = String(repeating: "n", count: Echo.maxShownLength)
        #expect(LoggedPath.of("/keys/\(longest)", template: "/keys/{keyId}", words: []) == "/keys/\(longest)")
        #expect(LoggedPath.of("/keys/\(longest)n", template: "/keys/{keyId}", words: []) == "/keys/{…}")
    }

    /// The file store's scheduler reference (`KeyScheduler.countedSinceStart`): the start's wall clock
    /// moved on by the monotonic clock, so a wall clock stepped ahead later differs from it (the hold
    /// itself: LifecycleAPITests.aHostClockAheadOfTheReferenceHoldsDeletions), except within ten
    /// minutes of boot, where a step is the host's first synchronisation and the new anchor.
    @Test func theFileStoreSchedulerCountsTheTimeSinceStart() async throws {
        let reference = KeyScheduler.countedSinceStart()
        let first = try await reference()
        try await Task.sleep(for: .milliseconds(50))
        let second = try await reference()
        #expect(second.timeIntervalSince(first) >= 0.05 && abs(second.timeIntervalSinceNow) < 1)
        // A host clock stepped an hour ahead since the start: an hour past the reference, at every read.
        let stepped = KeyScheduler.countedSinceStart(startingAt: Date().addingTimeInterval(-3_600), uptime: { 86_400 })
        #expect(abs(try await stepped().timeIntervalSinceNow + 3_600) < 1)
        #expect(abs(try await stepped().timeIntervalSinceNow + 3_600) < 1)
        // The same five minutes after boot: taken, and kept.
        let booting = KeyScheduler.countedSinceStart(startingAt: Date().addingTimeInterval(-3_600), uptime: { 300 })
        #expect(abs(try await booting().timeIntervalSinceNow) < 1)
        #expect(abs(try await booting().timeIntervalSinceNow) < 1)
        // A step made within the ten minutes but first read after them (a pass an interval later) is taken
        // too: judged by the reading before it (a review).
        let minutes = Mutex<TimeInterval>(300)
        let late = KeyScheduler.countedSinceStart(
            startingAt: Date().addingTimeInterval(-3_600), uptime: { minutes.withLock { $0 } })
        minutes.withLock { $0 = 900 }
        #expect(abs(try await late().timeIntervalSinceNow) < 1)
        // A step of less than the limit is never an anchor.
        let slight = KeyScheduler.countedSinceStart(startingAt: Date().addingTimeInterval(-30), uptime: { 300 })
        #expect(abs(try await slight().timeIntervalSinceNow + 30) < 1)
    }

    @Test func offListAddressesAreRefusedOnEveryRoute() async throws {
        try await TestServer(["KMS_WHITELIST": "100.64.0.0/10"]).run { client in
            for (uri, method) in [
                ("/healthz", HTTPRequest.Method.get), ("/nope", .get), ("/session/init", .get),
                ("/crypto/random", .post),
            ] {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.status == .forbidden, "\(uri)")
                #expect(response.errorCode == "address_not_allowed")
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            }
        }
    }

    /// A web page's request (DNS rebinding, or a blind cross-site POST) is refused, whatever route it
    /// names; the docs stay readable and a typed address (`Sec-Fetch-Site: none`) is a user, not a page.
    @Test func requestsMadeByWebPagesAreRefused() async throws {
        let origin = HTTPField.Name("Origin")!
        let fetchSite = HTTPField.Name("Sec-Fetch-Site")!
        try await TestServer(["KMS_CLIENT_AUTH": "off"]).run { client in
            for (uri, method, headers) in [
                ("/healthz", HTTPRequest.Method.get, [fetchSite: "same-origin"]),
                ("/metrics", .get, [fetchSite: "cross-site"]),
                ("/session/init", .get, [origin: "http://rebound.example:3000", fetchSite: "same-origin"]),
                ("/session/key-exchange", .post, [origin: "http://rebound.example:3000"]),
                ("/crypto/encrypt", .post, [origin: "null"]),
                ("/docs", .post, [origin: "http://rebound.example:3000"]), ("/nope", .get, [fetchSite: "same-site"]),
                ("/healthz", .get, [fetchSite: "none", origin: "http://rebound.example:3000"]),
            ] as [(String, HTTPRequest.Method, HTTPFields)] {
                let response = try await client.execute(uri: uri, method: method, headers: headers)
                #expect(response.status == .forbidden && response.errorCode == "browser_request_refused", "\(uri)")
            }
            for (uri, headers) in [
                ("/docs", [origin: "http://rebound.example:3000", fetchSite: "same-origin"]),
                ("/openapi.json", [fetchSite: "cross-site"]), ("/healthz", [fetchSite: "none"]),
                ("/metrics", [:]),
            ] as [(String, HTTPFields)] {
                let response = try await client.execute(uri: uri, method: .get, headers: headers)
                #expect(response.status == .ok, "\(uri)")
            }
        }
        // Two `Sec-Fetch-Site` lines, one `none`: still a page's.
        try await TestServer().run { client in
            var twice = HTTPFields()
            twice.append(HTTPField(name: fetchSite, value: "none"))
            twice.append(HTTPField(name: fetchSite, value: "same-origin"))
            let response = try await client.execute(uri: "/healthz", method: .get, headers: twice)
            #expect(response.errorCode == "browser_request_refused")
        }
        // The allowlist comes first: a stranger learns nothing more from sending Origin.
        try await TestServer(["KMS_WHITELIST": "100.64.0.0/10"]).run { client in
            let response = try await client.execute(uri: "/healthz", method: .get, headers: [origin: "http://x"])
            #expect(response.errorCode == "address_not_allowed")
        }
    }

    @Test(arguments: [
        ("100.64.0.9", 200), ("203.0.113.5", 403), ("203.0.113.5, 100.64.0.9", 200),
        ("100.64.0.9, 203.0.113.5", 403), ("::ffff:100.64.0.9", 200), ("::1", 200), ("2001:db8::1", 403),
        ("[::1]", 200), ("nonsense", 403), ("100.64.0.9,", 403), ("100.64.0.9:443", 403), ("127.0.0.1, 127.0.0.2", 200),
    ])
    func forwardedForFromATrustedProxy(_ header: String, _ status: Int) async throws {
        try await TestServer().run { client in
            let response = try await client.execute(uri: "/healthz", method: .get, headers: [Self.xff: header])
            #expect(response.status.code == status, "\(header)")
        }
    }

    /// Every Tailscale node sits in one IPv6 /64: one node's pending sessions must not lock out the
    /// others (a review: 64 from one node, then `429` for another), while a public /64 still counts once.
    @Test func eachTailscaleNodeHasItsOwnPendingSessions() async throws {
        try await TestServer([
            "KMS_PENDING_PER_ADDRESS": "2", "KMS_WHITELIST": "127.0.0.1,fd7a:115c:a1e0::/48,2001:db8::/32",
        ]).run { client in
            func initFrom(_ address: String) async throws -> Int {
                Int(
                    try await client.execute(uri: "/session/init", method: .get, headers: [Self.xff: address]).status
                        .code)
            }
            let (phone, laptop) = ("fd7a:115c:a1e0:ab12:4843:cd96:6262:101", "fd7a:115c:a1e0:ab12:4843:cd96:6270:897d")
            var phoneAnswers: [Int] = []
            for _ in 0..<3 { phoneAnswers.append(try await initFrom(phone)) }
            #expect(phoneAnswers == [200, 200, 429])
            let laptopAnswer = try await initFrom(laptop)
            #expect(laptopAnswer == 200)
            var publicAnswers: [Int] = []
            for host in 1...3 { publicAnswers.append(try await initFrom("2001:db8:0:1::\(host)")) }
            #expect(publicAnswers == [200, 200, 429])
        }
    }

    @Test func forwardedForFromAnUntrustedPeerIsIgnored() async throws {
        try await TestServer(["KMS_TRUSTED_PROXIES": ""]).run { client in
            // A spoofed hop cannot get an off-list client in, nor lock a listed peer out.
            let response = try await client.execute(uri: "/healthz", method: .get, headers: [Self.xff: "203.0.113.5"])
            #expect(response.status == .ok)
        }
        try await TestServer(["KMS_TRUSTED_PROXIES": "", "KMS_WHITELIST": "100.64.0.9"]).run { client in
            let response = try await client.execute(uri: "/healthz", method: .get, headers: [Self.xff: "100.64.0.9"])
            #expect(response.status == .forbidden)
        }
    }

    @Test func declaredBodiesOverTheLimitAre413() async throws {
        try await TestServer(["KMS_MAX_BODY_BYTES": "2048"]).run { client in
            let body = ByteBuffer(repeating: UInt8(ascii: "a"), count: 4096)
            let response = try await client.execute(uri: "/session/key-exchange", method: .post, body: body)
            #expect(response.status == .contentTooLarge && response.errorCode == "payload_too_large")
        }
    }

    @Test func metricsCountRequestsByRoutePattern() async throws {
        try await TestServer().run { client in
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/nope/secret-looking-path", method: .get)
            // A method outside the usual set (WebDAV's, here) is labelled `other`: labels cannot grow with what clients send.
            _ = try await client.execute(uri: "/healthz", method: try #require(.init("PROPFIND")))
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains(#"kms_http_requests_total{route="/healthz",method="GET",status="200"} 1"#))
            #expect(metrics.text.contains("kms_http_request_duration_seconds"))
            // Every family says what it counts (an operator reading /metrics had to find it in the docs).
            let typed = metrics.text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map {
                $0.split(separator: " ")[2]
            }
            #expect(Set(typed) == Set(MetricHelp.byName.keys.map { Substring($0) }))
            for name in typed {
                #expect(metrics.text.contains("# HELP \(name) \(MetricHelp.byName[String(name)] ?? "-")\n"))
            }
            #expect(!metrics.text.contains("secret-looking-path"))
            #expect(metrics.text.contains(#"method="other""#) && !metrics.text.contains("PROPFIND"))
            // A 405 is counted under the route it reached; only paths no route has are `unmatched`.
            #expect(metrics.text.contains(#"kms_http_requests_total{route="/healthz",method="other",status="405"} 1"#))
            #expect(metrics.text.contains(#"kms_http_requests_total{route="unmatched",method="GET",status="404"} 1"#))
        }
    }
}
