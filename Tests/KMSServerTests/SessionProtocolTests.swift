import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSServer
import NIOCore
import Testing

/// Issue 3: protocol-v1.md over HTTP, every refusal included.
@Suite struct SessionProtocolTests {
    /// Issue 17: key exchanges from one address are rate-limited before any
    /// work (429 with Retry-After) while the RSA threads are busy; a fast
    /// client alone on an idle server is not refused. The RSA work queue
    /// bounds and counts unwraps.
    @Test func keyExchangeFloodsAreRateLimited() async throws {
        var server = try TestServer(["KMS_KEY_EXCHANGE_RATE": "1"])
        let rsa = RSAWorkQueue(width: 1, backlog: 8)
        server.dependencies.rsaQueue = rsa
        try await server.run { client in
            func exchange() async throws -> (status: Int, retryAfter: String?, code: String?) {
                let response = try await WireSession(client: client).keyExchange(
                    body: #"{"sessionId":"x","wrappedKey":"AA=="}"#)
                return (Int(response.status.code), response.headers[.retryAfter], response.errorCode)
            }
            // Idle RSA threads: 10 exchanges on a bucket of 2 are all judged on their own (404 unknown session).
            for _ in 0..<10 { #expect(try await exchange().status != 429) }
            // Busy RSA threads (a place held in the queue, as a flood would): the empty bucket refuses.
            let held = try rsa.reserve()
            var statuses: [Int] = []
            var retryAfter: String?
            let start = Date()
            for _ in 0..<40 {
                let answer = try await exchange()
                statuses.append(answer.status)
                if answer.status == 429 {
                    retryAfter = answer.retryAfter
                    #expect(answer.code == "rate_limited")
                }
            }
            held.release()
            // Refilled at 1/s: at most 1 + elapsed seconds admitted, however slow the machine.
            let elapsed = Date().timeIntervalSince(start)
            let admitted = statuses.filter { $0 != 429 }.count
            #expect(Double(admitted) <= 2 + elapsed, "\(admitted) admitted in \(elapsed) s: \(statuses)")
            #expect(statuses.contains(429), "\(statuses)")
            #expect(retryAfter.flatMap(Int.init).map { $0 >= 1 } == true)
        }
        let queue = RSAWorkQueue(width: 1, backlog: 2)
        let identity = TestServer.identity
        let results = await withTaskGroup(of: ErrorCode?.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    do {
                        _ = try await queue.run { () throws(KMSError) in
                            try SessionKeyUnwrapper.unwrap(wrappedKey: "AA==", with: identity)
                        }
                        return nil
                    } catch {
                        return (error as? KMSError)?.code
                    }
                }
            }
            return await group.reduce(into: [ErrorCode?]()) { $0.append($1) }
        }
        // Every call either ran (and failed as a bad key must) or was refused as busy, never queued past the backlog.
        #expect(results.allSatisfy { $0 == .keyExchangeFailed || $0 == .serverBusy }, "\(results)")
        #expect(queue.completed.load(ordering: .relaxed) == results.filter { $0 == .keyExchangeFailed }.count)
    }

    @Test func keyExchangeSealedCallsRotationAndEnd() async throws {
        let server = try TestServer()
        try await server.run { client in
            let session = WireSession(client: client)
            let confirmation = try await session.establish()
            #expect(confirmation.sessionId == session.sessionId)
            #expect(confirmation.ttlMs == 900_000 && confirmation.sliding && confirmation.maxLifetimeMs == 86_400_000)
            let started = try #require(session.initResponse)
            #expect(started.algorithm == "RSA-OAEP-256" && started.fingerprint == TestServer.identity.fingerprint)
            #expect(started.sessionId.count >= 22 && started.publicKey.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))

            let random = try await session.call(.post, "/crypto/random", #"{"bytes":16}"#)
            #expect(random.status == 200 && random.isSealed)
            #expect(Base64.decodeStrict(random.json["random"] as? String ?? "")?.count == 16)

            let rotated = try await session.call(.post, "/session/rotate-token", "{}")
            let newToken = try #require(rotated.json["token"] as? String)
            #expect(ClientToken.isWellFormed(newToken, prefix: nil) && rotated.json["expiresAt"] is String)
            let oldToken = session.token
            session.token = newToken
            #expect(try await session.call(.post, "/crypto/random", #"{"bytes":1}"#).status == 200)
            let stale = try await session.send(
                .post, "/crypto/random", envelope: try session.seal(.post, "/crypto/random", #"{"bytes":1}"#),
                token: oldToken)
            #expect(stale.status == 401 && stale.errorCode == "unknown_session" && !stale.isSealed)

            let own = WireSession.randomToken()
            #expect(
                try await session.call(.post, "/session/rotate-token", #"{"token":"\#(own)"}"#).json["token"] as? String
                    == own)
            session.token = own
            let badOwn = try await session.call(.post, "/session/rotate-token", #"{"token":"short"}"#)
            #expect(badOwn.status == 400 && badOwn.errorField == "token")

            let ended = try await session.call(.delete, "/session")
            #expect(ended.status == 200 && ended.isSealed && ended.json.isEmpty)
            let after = try await session.call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(after.status == 401 && after.errorCode == "unknown_session")
        }
    }

    @Test func keyExchangeRefusals() async throws {
        try await TestServer().run { client in
            let first = WireSession(client: client)
            try await first.establish()
            let initJSON = { () async throws -> SessionInitResponse in
                let response = try await client.execute(uri: "/session/init", method: .get)
                return try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: response.body))
            }
            let started = try await initJSON()
            let wrapped = try ClientSeal.wrapSessionKey(SymmetricKey(size: .bits256), publicKeyPEM: started.publicKey)
            let good = #"{"sessionId":"\#(started.sessionId)","wrappedKey":"\#(wrapped)"}"#
            let session = WireSession(client: client)

            #expect(try await session.keyExchange(body: good, token: "short").errorCode == "invalid_token")
            var noToken: HTTPFields = [:]
            noToken[.contentType] = "application/json"
            let missing = try await client.execute(
                uri: "/session/key-exchange", method: .post, headers: noToken, body: ByteBuffer(string: good))
            #expect(missing.status == .unauthorized && missing.errorCode == "invalid_token")
            #expect(try await session.keyExchange(body: "not json").errorCode == "bad_request")
            let extra = try await session.keyExchange(body: good.replacingOccurrences(of: "}", with: #","x":1}"#))
            #expect(extra.status == .badRequest && extra.errorCode == "invalid_request")
            // A member named "": a field error like any unknown member (not a body-shape one), with no empty `field`.
            let empty = try await session.keyExchange(body: good.replacingOccurrences(of: "}", with: #","":1}"#))
            #expect(empty.status == .badRequest && empty.errorCode == "invalid_request")
            #expect(!String(buffer: empty.body).contains(#""field""#), "\(String(buffer: empty.body))")
            let unknown = try await session.keyExchange(body: #"{"sessionId":"nope","wrappedKey":"\#(wrapped)"}"#)
            #expect(unknown.status == .unauthorized && unknown.errorCode == "unknown_session")
            let nul = try await session.keyExchange(
                body: #"{"sessionId":"abcdefghijklmnopqrstuv\u0000wx","wrappedKey":"\#(wrapped)"}"#)
            #expect(nul.status == .unauthorized && nul.errorCode == "unknown_session")
            let inUse = try await session.keyExchange(body: good, token: first.token)
            #expect(inUse.status == .conflict && inUse.errorCode == "token_in_use")

            // Every unwrap failure is the same 400, and uses the pending session up.
            var bodies: [String] = []
            for wrappedKey in ["!!!", "AAAA", Base64.encode(Data(repeating: 1, count: 512)), wrapped + "A"] {
                let next = try await initJSON()
                bodies.append(#"{"sessionId":"\#(next.sessionId)","wrappedKey":"\#(wrappedKey)"}"#)
            }
            var messages = Set<String>()
            for body in bodies {
                let response = try await session.keyExchange(body: body)
                #expect(response.status == .badRequest && response.errorCode == "key_exchange_failed")
                messages.insert((response.json["error"] as? [String: Any])?["message"] as? String ?? "")
                #expect(try await session.keyExchange(body: body).errorCode == "unknown_session")
            }
            #expect(messages.count == 1)

            #expect(try await session.keyExchange(body: good).status == .ok)
            #expect(try await WireSession(client: client).keyExchange(body: good).errorCode == "unknown_session")
        }
    }

    @Test func sealedRequestRefusals() async throws {
        try await TestServer().run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let other = WireSession(client: client)
            try await other.establish()

            // Replay: sealed 401 echoing the seq.
            let envelope = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#)
            #expect(try await session.send(.post, "/crypto/random", envelope: envelope).status == 200)
            let replay = try await session.send(.post, "/crypto/random", envelope: envelope)
            #expect(replay.status == 401 && replay.errorCode == "replay_detected" && replay.isSealed)

            // Out of order inside the window: accepted; below it: refused.
            let late = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#, seq: 1500)
            let early = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#, seq: 1000)
            let old = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#, seq: 400)
            #expect(try await session.send(.post, "/crypto/random", envelope: late).status == 200)
            #expect(try await session.send(.post, "/crypto/random", envelope: early).status == 200)
            #expect(try await session.send(.post, "/crypto/random", envelope: old).errorCode == "replay_detected")

            // Re-targeted, edited, cross-session: plain 401.
            let retarget = try session.seal(.post, "/session/rotate-token", "{}")
            let moved = try await session.send(.post, "/crypto/random", envelope: retarget)
            #expect(moved.status == 401 && moved.errorCode == "authentication_failed" && !moved.isSealed)
            var edited = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#)
            edited.ciphertext[0] ^= 1
            #expect(
                try await session.send(.post, "/crypto/random", envelope: edited).errorCode == "authentication_failed")
            let foreign = try other.seal(.post, "/crypto/random", #"{"bytes":4}"#)
            #expect(
                try await session.send(.post, "/crypto/random", envelope: foreign).errorCode == "authentication_failed")
            let targetWithQuery = try session.seal(.post, "/crypto/random", #"{"bytes":4}"#)
            #expect(
                try await session.send(.post, "/crypto/random?x=1", envelope: targetWithQuery).errorCode
                    == "authentication_failed")

            // Malformed envelopes: plain 400.
            for bad in [
                #"{"seq":1}"#, "[]",
                #"{"seq":0,"iv":"AAAAAAAAAAAAAAAA","ciphertext":"","tag":"AAAAAAAAAAAAAAAAAAAAAA=="}"#,
            ] {
                let response = try await session.sendRaw(.post, "/crypto/random", envelopeJSON: Data(bad.utf8))
                #expect(response.status == .badRequest && response.errorCode == "invalid_envelope")
            }
            let noHeader = try await client.execute(
                uri: "/session", method: .delete, headers: [WireSession.tokenHeader: session.token])
            #expect(noHeader.errorCode == "invalid_envelope")

            // GET/DELETE must seal the empty string.
            let nonEmpty = try session.seal(.delete, "/session", "{}")
            let refused = try await session.send(.delete, "/session", envelope: nonEmpty)
            #expect(refused.status == 400 && refused.isSealed)

            // Inner validation: sealed 400 naming the field.
            for (inner, field) in [
                (#"{"bytes":0}"#, "bytes"), (#"{"bytes":1025}"#, "bytes"), (#"{"bytes":"1"}"#, "bytes"),
                (#"{"bytes":1.0}"#, "bytes"), (#"{"bytes":1,"more":1}"#, "more"),
            ] {
                let response = try await session.call(.post, "/crypto/random", inner)
                #expect(
                    response.status == 400 && response.errorCode == "invalid_request" && response.errorField == field)
            }
            #expect(try await session.call(.post, "/crypto/random", "nope").errorCode == "invalid_request")
            // The error never echoes the token.
            #expect(!replay.raw.text.contains(session.token))
        }
    }

    @Test func expiryIsSlidingAndCapped() async throws {
        let server = try TestServer(["KMS_SESSION_TTL_MS": "10000", "KMS_SESSION_MAX_LIFETIME_MS": "25000"])
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            for _ in 0..<2 {
                server.clock.advance(milliseconds: 9_000)
                #expect(try await session.call(.post, "/crypto/random", #"{"bytes":1}"#).status == 200)
            }
            server.clock.advance(milliseconds: 6_000)  // 24 s: still inside the absolute lifetime
            #expect(try await session.call(.post, "/crypto/random", #"{"bytes":1}"#).status == 200)
            server.clock.advance(milliseconds: 1_000)  // 25 s: past it, however recently used
            let expired = try await session.call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(expired.status == 401 && expired.errorCode == "unknown_session")
        }
    }

    /// protocol-v1 section 9: a TTL longer than the absolute lifetime is capped by it, and the
    /// confirmation's `ttlMs` says the TTL in force (docs/protocol.md), not the setting.
    @Test func aTTLLongerThanTheLifetimeIsReportedCapped() async throws {
        let server = try TestServer(["KMS_SESSION_TTL_MS": "60000", "KMS_SESSION_MAX_LIFETIME_MS": "20000"])
        try await server.run { client in
            let session = WireSession(client: client)
            let confirmation = try await session.establish()
            #expect(confirmation.ttlMs == 20_000 && confirmation.maxLifetimeMs == 20_000)
            server.clock.advance(milliseconds: 20_000)
            #expect(try await session.call(.post, "/crypto/random", #"{"bytes":1}"#).status == 401)
        }
    }

    @Test func fixedExpiryWhenNotSliding() async throws {
        let server = try TestServer(["KMS_SESSION_TTL_MS": "10000", "KMS_SESSION_SLIDING": "false"])
        try await server.run { client in
            let session = WireSession(client: client)
            let confirmation = try await session.establish()
            #expect(!confirmation.sliding)
            server.clock.advance(milliseconds: 9_000)
            let inside = try await session.call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(inside.status == 200)
            server.clock.advance(milliseconds: 1_000)
            let outside = try await session.call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(outside.status == 401)
        }
    }

    @Test func pendingSessionsExpire() async throws {
        let server = try TestServer(["KMS_SESSION_INIT_TTL_MS": "5000"])
        try await server.run { client in
            let response = try await client.execute(uri: "/session/init", method: .get)
            let started = try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: response.body))
            server.clock.advance(milliseconds: 5_000)
            let wrapped = try ClientSeal.wrapSessionKey(SymmetricKey(size: .bits256), publicKeyPEM: started.publicKey)
            let late = try await WireSession(client: client).keyExchange(
                body: #"{"sessionId":"\#(started.sessionId)","wrappedKey":"\#(wrapped)"}"#)
            #expect(late.errorCode == "unknown_session")
        }
    }

    @Test func rotationIsRateLimited() async throws {
        let server = try TestServer(["KMS_ROTATE_MAX": "2", "KMS_ROTATE_WINDOW_MS": "10000"])
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            for _ in 0..<2 {
                let rotated = try await session.call(.post, "/session/rotate-token", "{}")
                session.token = try #require(rotated.json["token"] as? String)
            }
            let limited = try await session.call(.post, "/session/rotate-token", "{}")
            #expect(limited.status == 429 && limited.errorCode == "rate_limited" && limited.isSealed)
            #expect(limited.raw.headers[.retryAfter] == "10")
            server.clock.advance(milliseconds: 10_001)
            #expect(try await session.call(.post, "/session/rotate-token", "{}").status == 200)
        }
    }

    @Test func tokenPrefixApplies() async throws {
        try await TestServer(["KMS_TOKEN_PREFIX": "home_"]).run { client in
            let unprefixed = WireSession(client: client)
            let refused = await #expect(throws: WireError.self) { try await unprefixed.establish() }
            if case .status(let status, let body)? = refused {
                // Refused without repeating the configured prefix.
                #expect(status == 401 && body.contains("invalid_token") && !body.contains("home_"), "\(body)")
            }
            let session = WireSession(client: client, token: "home_" + WireSession.randomToken())
            try await session.establish()
            let rotated = try await session.call(.post, "/session/rotate-token", "{}")
            #expect((rotated.json["token"] as? String)?.hasPrefix("home_") == true)
        }
    }

    /// 20,000 inits from 400 addresses: the bounds hold and the server still serves.
    @Test func initFloodStaysBounded() async throws {
        try await TestServer(["KMS_WHITELIST": "10.0.0.0/8,127.0.0.0/8,::1"]).run { client in
            let session = WireSession(client: client)
            try await session.establish()
            var statuses: [Int: Int] = [:]
            for index in 0..<20_000 {
                let address = "10.0.\(index % 400 / 200).\(index % 200)"
                let response = try await client.execute(
                    uri: "/session/init", method: .get, headers: [FoundationTests.xff: address])
                statuses[response.status.code, default: 0] += 1
                if response.status.code != 200 { #expect(response.headers[.retryAfter] != nil) }
            }
            #expect(statuses[200] == 10_000)
            #expect(statuses[503, default: 0] > 0)
            let perAddress = try await client.execute(
                uri: "/session/init", method: .get, headers: [FoundationTests.xff: "10.0.0.1"])
            #expect(perAddress.status == .tooManyRequests || perAddress.status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await session.call(.post, "/crypto/random", #"{"bytes":8}"#).status == 200)
        }
    }
}
