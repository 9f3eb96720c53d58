import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSServer
import Synchronization
import Testing

/// identity-v1 over HTTP with `KMS_CLIENT_AUTH=required`: signed key
/// exchanges, one answer for every client failure, no RSA work for an
/// unenrolled key, sessions that end with their client.
@Suite struct IdentityTests {
    /// A server with identity on, its client store and RSA queue reachable by the test.
    static func server() throws -> (TestServer, ClientRegistry, RSAWorkQueue) {
        var server = try TestServer(["KMS_CLIENT_AUTH": "required"])
        let store = LocalClientStore()
        let rsa = RSAWorkQueue()
        server.dependencies.clientStore = store
        server.dependencies.rsaQueue = rsa
        let registry = ClientRegistry(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 7, count: 32)), clock: SystemClock())
        return (server, registry, rsa)
    }

    @Test func theBootstrapAdminSignsAndAV1BodyIsRefusedWithoutUsingThePendingSession() async throws {
        let (server, registry, _) = try Self.server()
        try await server.run { client in
            let admin = try await registry.resolve("admin").record
            #expect(admin.publicKey == TestServer.adminKey.publicKey.rawRepresentation && admin.grants == [.everything])
            let session = WireSession(client: client)
            try await session.establish()
            #expect(try await session.call(.post, "/crypto/random", #"{"bytes":4}"#).status == 200)

            // Rule 13.2: a protocol-v1 body is a missing member; the pending session survives it.
            let unsigned = WireSession(client: client)
            let initResponse = try await client.execute(uri: "/session/init", method: .get)
            let started = try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: initResponse.body))
            unsigned.sessionId = started.sessionId
            let wrapped = try ClientSeal.wrapSessionKey(unsigned.key, publicKeyPEM: started.publicKey)
            let refused = try await unsigned.keyExchange(
                body: #"{"sessionId":"\#(started.sessionId)","wrappedKey":"\#(wrapped)"}"#)
            #expect(refused.status == .badRequest && refused.errorCode == "invalid_request")
            #expect(refused.text.contains("\"field\":\"clientKey\"") && refused.text.contains("enrol this device"))
            let signed = try await unsigned.keyExchange(
                body: try unsigned.signedBody(wrappedKey: wrapped, serverKeyPEM: started.publicKey))
            #expect(signed.status == .ok, "\(signed.text)")
        }
    }

    @Test func unknownRevokedAndForgedLookAlikeAndCostNoRSA() async throws {
        let (server, registry, rsa) = try Self.server()
        try await server.run { client in
            let phoneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(name: "phone", publicKey: phoneKey.publicKey.rawRepresentation, grants: [])
            _ = try await registry.add(
                name: "gone", publicKey: Curve25519.Signing.PrivateKey().publicKey.rawRepresentation, grants: [])
            let goneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(name: "lost", publicKey: goneKey.publicKey.rawRepresentation, grants: [])
            _ = try await registry.revoke("lost")
            let before = rsa.completed.load(ordering: .relaxed)
            var answers: [String] = []
            // Unknown key, revoked client, a signature by another key.
            for (signer, claimed) in [
                (Curve25519.Signing.PrivateKey(), nil as Curve25519.Signing.PrivateKey?), (goneKey, nil),
                (Curve25519.Signing.PrivateKey(), phoneKey),
            ] {
                let session = WireSession(client: client)
                session.clientKey = signer
                let initResponse = try await client.execute(uri: "/session/init", method: .get)
                let started = try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: initResponse.body))
                session.sessionId = started.sessionId
                let wrapped = try ClientSeal.wrapSessionKey(session.key, publicKeyPEM: started.publicKey)
                var body = try session.signedBody(wrappedKey: wrapped, serverKeyPEM: started.publicKey)
                if let claimed {
                    let forgedFor = ClientAuth.fingerprint(rawPublicKey: claimed.publicKey.rawRepresentation)
                    let signerId = ClientAuth.fingerprint(rawPublicKey: signer.publicKey.rawRepresentation)
                    body = body.replacingOccurrences(of: signerId, with: forgedFor)
                }
                let response = try await session.keyExchange(body: body)
                #expect(response.status == .unauthorized && response.errorCode == "client_not_authenticated")
                answers.append(
                    response.text.replacingOccurrences(
                        of: #""requestId":"[^"]*""#, with: "", options: .regularExpression))
            }
            #expect(Set(answers).count == 1, "\(answers)")
            #expect(rsa.completed.load(ordering: .relaxed) == before, "an unenrolled key cost an RSA decryption")
            // The enrolled phone gets a session bound to it.
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()
            #expect(rsa.completed.load(ordering: .relaxed) == before + 1)
        }
    }

    /// identity-v1 section 2: only a `wrappedKey` that is not b64 is refused before the client check; b64
    /// of another length is an unwrap failure, so an unenrolled key gets 401 whatever it wraps.
    @Test func aWrappedKeyOfTheWrongLengthIsJudgedAfterTheClient() async throws {
        let (server, registry, rsa) = try Self.server()
        try await server.run { client in
            let phoneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(name: "phone", publicKey: phoneKey.publicKey.rawRepresentation, grants: [])
            let short = Data(repeating: 1, count: 256).base64EncodedString()
            let before = rsa.completed.load(ordering: .relaxed)
            let cases: [(Curve25519.Signing.PrivateKey, String, Int, String)] = [
                (Curve25519.Signing.PrivateKey(), short, 401, "client_not_authenticated"),
                (phoneKey, short, 400, "key_exchange_failed"),
                (Curve25519.Signing.PrivateKey(), "not b64!", 400, "key_exchange_failed"),
            ]
            for (signer, wrapped, status, code) in cases {
                let session = WireSession(client: client)
                session.clientKey = signer
                let initResponse = try await client.execute(uri: "/session/init", method: .get)
                let started = try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: initResponse.body))
                session.sessionId = started.sessionId
                let body = try session.signedBody(wrappedKey: wrapped, serverKeyPEM: started.publicKey)
                let response = try await session.keyExchange(body: body)
                #expect(response.status.code == status && response.errorCode == code, "\(response.text)")
            }
            #expect(rsa.completed.load(ordering: .relaxed) == before, "an unwrap that could not succeed ran")
        }
    }

    @Test func revokingAClientEndsItsSessions() async throws {
        let (server, registry, _) = try Self.server()
        try await server.run { client in
            let phoneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(name: "phone", publicKey: phoneKey.publicKey.rawRepresentation, grants: [])
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()
            #expect(try await phone.call(.post, "/crypto/random", #"{"bytes":4}"#).status == 200)
            _ = try await registry.revoke("phone")
            let refused = try await phone.call(.post, "/crypto/random", #"{"bytes":4}"#)
            #expect(refused.status == 401 && refused.errorCode == "unknown_session", "\(refused.json)")
            // The session is gone: the token alone is useless from now on.
            let again = try await phone.call(.post, "/crypto/random", #"{"bytes":4}"#)
            #expect(again.status == 401 && again.errorCode == "unknown_session" && !again.isSealed)
        }
    }

    /// A server of `server()` with an established admin session and a key generated under each alias.
    static func withAdminAndKeys(
        _ aliases: [String],
        _ body: @Sendable (any TestClientProtocol, WireSession, ClientRegistry) async throws -> Void
    ) async throws {
        let (server, registry, _) = try Self.server()
        try await server.run { client in
            let admin = WireSession(client: client)
            try await admin.establish()
            for alias in aliases {
                #expect(try await admin.call(.post, "/keys/generate", #"{"alias":"\#(alias)"}"#).status == 200)
            }
            try await body(client, admin, registry)
        }
    }

    /// A review: every `403 permission_denied` wrote a full audit entry, so a device enrolled with no
    /// grant filled the disk at its request rate (and a full disk refuses every audited operation).
    /// Denials are thinned per client, permission and key, with the client's skipped count.
    @Test func permissionDenialsAreThinnedPerClient() async throws {
        let (server, registry, _) = try Self.server()
        let log = server.config.auditLog
        try await server.run { client in
            let admin = WireSession(client: client)
            try await admin.establish()
            #expect(try await admin.call(.post, "/keys/generate", #"{"alias":"photos"}"#).status == 200)
            let phoneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(
                name: "phone", publicKey: phoneKey.publicKey.rawRepresentation,
                grants: [Grant(keys: [.alias("other")], allow: [.cryptoEncrypt])])
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()
            func denials(_ count: Int) async throws -> [Substring] {
                var lines: [Substring] = []
                for _ in 0..<100 {
                    lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").filter {
                        $0.contains(#""type":"permission.denied""#)
                    }
                    if lines.count >= count { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return lines
            }
            for _ in 0..<30 {
                #expect(
                    try await phone.call(.post, "/keys/rotate", #"{"keyId":"photos"}"#).errorCode == "permission_denied"
                )
            }
            #expect(
                try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"photos","plaintext":""}"#).errorCode
                    == "permission_denied")
            var written = try await denials(2)
            try await Task.sleep(for: .milliseconds(100))
            written = try await denials(2)
            // The second line (another permission) counts the 29 left out before it, the client's.
            #expect(
                written.count == 2 && written[0].contains(#""suppressed":"0""#)
                    && written[1].contains(#""suppressed":"29""#), "\(written)")
            #expect(written.allSatisfy { $0.contains(#""clientName":"phone""#) })
            func rotate(_ key: String) async throws -> String? {
                try await phone.call(.post, "/keys/rotate", #"{"keyId":"\#(key)"}"#).errorCode
            }
            for _ in 0..<5 { #expect(try await rotate("photos") == "permission_denied") }
            // Eight more names fill the client's ten lines of the minute; the key it was after, behind them,
            // is not written, but named on its next line (the diff review: it could hide it so).
            for index in 0..<8 { #expect(try await rotate("junk-\(index)") == "permission_denied") }
            #expect(try await rotate("junk-8") == "permission_denied")
            #expect(try await rotate("secret-target") == "permission_denied")
            _ = try await denials(10)
            // A minute later the next is written, counting the client's denials left out since its last line.
            server.clock.advance(milliseconds: 60_000)
            #expect(try await rotate("photos") == "permission_denied")
            written = try await denials(11)
            // The first junk line counts and names the five repeats before it; the last the two behind the cap.
            #expect(
                written.count == 11
                    && written[2].contains(#""suppressed":"5","suppressedKeys":"keys:rotate photos key_"#),
                "\(written)")
            #expect(
                written.last?.contains(
                    #""suppressed":"2","suppressedKeys":"keys:rotate junk-8, keys:rotate secret-target""#) == true,
                "\(written.last ?? "")")
        }
    }

    @Test func grantsDecideEverySealedRoute() async throws {
        try await Self.withAdminAndKeys(["photos", "secret"]) { client, admin, registry in
            let photosId = try #require(try await admin.call(.get, "/keys/photos").json["keyId"] as? String)
            let secretCiphertext = try #require(
                try await admin.call(.post, "/crypto/encrypt", #"{"keyId":"secret","plaintext":"AAAA"}"#)
                    .json["ciphertext"] as? String)

            let phoneKey = Curve25519.Signing.PrivateKey()
            let grants = [Grant(keys: [.alias("photos"), .alias("gone")], allow: [.cryptoEncrypt, .keysRead])]
            _ = try await registry.add(name: "phone", publicKey: phoneKey.publicKey.rawRepresentation, grants: grants)
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()

            func code(_ outcome: WireSession.Outcome) -> String { outcome.errorCode ?? "\(outcome.status)" }
            #expect(
                code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"photos","plaintext":"AAAA"}"#)) == "200"
            )
            #expect(
                code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"\#(photosId)","plaintext":"AAAA"}"#))
                    == "200")
            let denied = try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"secret","plaintext":"AAAA"}"#)
            #expect(denied.status == 403 && denied.isSealed && denied.errorCode == "permission_denied")
            #expect(
                (denied.json["error"] as? [String: Any])?["message"] as? String
                    == "permission crypto:encrypt is not granted for key secret")
            // A forbidden key and a missing one look alike; a missing key the client names itself is 404.
            #expect(
                code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"missing","plaintext":"AAAA"}"#))
                    == "permission_denied")
            #expect(
                code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"gone","plaintext":"AAAA"}"#))
                    == "key_not_found")
            #expect(
                code(try await phone.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(secretCiphertext)"}"#))
                    == "permission_denied")
            #expect(code(try await phone.call(.post, "/crypto/datakey", #"{"keyId":"photos"}"#)) == "permission_denied")
            #expect(code(try await phone.call(.post, "/keys/generate", #"{"alias":"mine"}"#)) == "permission_denied")
            #expect(code(try await phone.call(.post, "/keys/rotate", #"{"keyId":"photos"}"#)) == "permission_denied")
            #expect(code(try await phone.call(.get, "/keys/secret")) == "permission_denied")
            #expect(code(try await phone.call(.get, "/keys/photos")) == "200")
            // The inner request is judged first: a malformed one is 400, not 403.
            #expect(code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"secret"}"#)) == "invalid_request")
            // A name outside both grammars names no key: missing, so 403 where no pattern matches it
            // (identity-v1 section 4: forbidden and missing look alike); with `*`, 404.
            for (method, target, inner) in [
                (HTTPRequest.Method.post, "/keys/rotate", #"{"keyId":"!!"}"#),
                (.post, "/crypto/encrypt", #"{"keyId":"!!","plaintext":""}"#), (.get, "/keys/!!", nil),
                (.post, "/crypto/encrypt", #"{"keyId":"\#(String(repeating: "m", count: 65))","plaintext":""}"#),
            ] {
                let malformed = try await phone.call(method, target, inner)
                #expect(code(malformed) == "permission_denied", "\(target): \(malformed.json)")
                let asAdmin = try await admin.call(method, target, inner)
                #expect(code(asAdmin) == "key_not_found", "\(target): \(asAdmin.json)")
            }
            #expect(
                code(try await phone.call(.post, "/crypto/decrypt", #"{"ciphertext":"nonsense"}"#)) == "invalid_request"
            )
            // GET /keys lists the readable keys only, and never answers 403.
            let listed = try await phone.call(.get, "/keys?limit=1")
            let keys = try #require(listed.json["keys"] as? [[String: Any]])
            #expect(keys.compactMap { $0["alias"] as? String } == ["photos"] && listed.json["next"] == nil)
            // GET /session names the client as read now.
            let info = try await phone.call(.get, "/session")
            let described = try #require(info.json["client"] as? [String: Any])
            #expect(described["name"] as? String == "phone" && info.json["sessionId"] as? String == phone.sessionId)
            // A grant change applies to the next request.
            _ = try await registry.setGrants("phone", [Grant(keys: [.any], allow: [.cryptoEncrypt])])
            #expect(
                code(try await phone.call(.post, "/crypto/encrypt", #"{"keyId":"secret","plaintext":"AAAA"}"#)) == "200"
            )
            #expect(code(try await phone.call(.get, "/keys/photos")) == "permission_denied")
        }
    }

    /// An alias never widens its own client's access: alias grants follow the
    /// alias, so `keys:manage` on a key and `crypto:decrypt` on `app-*` gave
    /// decrypt on the key by naming it `app-steal` (a review did this).
    @Test func anAliasNeverWidensItsOwnClientsAccess() async throws {
        try await Self.withAdminAndKeys(["secret", "app-1"]) { client, admin, registry in
            let ciphertext = try #require(
                try await admin.call(.post, "/crypto/encrypt", #"{"keyId":"secret","plaintext":"AAAA"}"#)
                    .json["ciphertext"] as? String)
            let keyAdminKey = Curve25519.Signing.PrivateKey()
            let grants = [
                Grant(keys: [.any], allow: [.keysManage]), Grant(keys: [.prefix("app-")], allow: [.cryptoDecrypt]),
            ]
            _ = try await registry.add(
                name: "keyadmin", publicKey: keyAdminKey.publicKey.rawRepresentation, grants: grants)
            let keyAdmin = WireSession(client: client)
            keyAdmin.clientKey = keyAdminKey
            try await keyAdmin.establish()
            func decrypt() async throws -> String? {
                try await keyAdmin.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#).errorCode
            }
            #expect(try await decrypt() == "permission_denied")
            let stolen = try await keyAdmin.call(.post, "/aliases", #"{"alias":"app-steal","keyId":"secret"}"#)
            #expect(stolen.status == 403 && stolen.errorCode == "permission_denied", "\(stolen.json)")
            #expect(
                (stolen.json["error"] as? [String: Any])?["message"] as? String
                    == "alias app-steal would give this client crypto:decrypt on key secret, which its grants do not give on that key"
            )
            let moved = try await keyAdmin.call(.post, "/aliases/app-1", #"{"keyId":"secret"}"#)
            #expect(moved.errorCode == "permission_denied", "\(moved.json)")
            #expect(try await decrypt() == "permission_denied")
            // A name that brings nothing beyond what the client holds on the key is still its to give:
            // one outside its crypto grants, or one its grants match on a key they already reach by another name.
            #expect(try await keyAdmin.call(.post, "/aliases", #"{"alias":"ops-1","keyId":"secret"}"#).status == 200)
            #expect(try await keyAdmin.call(.post, "/aliases", #"{"alias":"app-2","keyId":"app-1"}"#).status == 200)
            // An alias that already names the key gains nothing: rule 9.2's 409, not a 403.
            let again = try await keyAdmin.call(.post, "/aliases", #"{"alias":"app-1","keyId":"app-1"}"#)
            #expect(again.errorCode == "alias_in_use", "\(again.json)")
            // And the admin, who holds everything everywhere, names as before.
            #expect(try await admin.call(.post, "/aliases", #"{"alias":"app-3","keyId":"secret"}"#).status == 200)
            #expect(try await decrypt() == nil)
        }
    }

    /// A server on a `FailingSessionStore`, with an established admin session
    /// and `phone` enrolled without grants: `body` gets the test client, the
    /// admin, the store, the registry, the phone's key and its clientId.
    static func withPhone(
        _ body:
            @Sendable (
                any TestClientProtocol, WireSession, FailingSessionStore, ClientRegistry, Curve25519.Signing.PrivateKey,
                String
            ) async throws -> Void
    ) async throws {
        let (built, registry, _) = try Self.server()
        var server = built
        let sessions = FailingSessionStore()
        server.dependencies.sessionStore = sessions
        try await server.run { client in
            let admin = WireSession(client: client)
            try await admin.establish()
            let phoneKey = Curve25519.Signing.PrivateKey()
            let publicKey = Base64.encode(phoneKey.publicKey.rawRepresentation)
            let added = try await admin.call(
                .post, "/clients", #"{"name":"phone","publicKey":"\#(publicKey)","grants":[]}"#)
            let clientId = try #require(added.json["clientId"] as? String)
            try await body(client, admin, sessions, registry, phoneKey, clientId)
        }
    }

    /// identity-v1 section 3: a `200` from revoke means the client's sessions
    /// are gone too. When deleting them fails, the answer is `503` and the
    /// revocation stands: a session used meanwhile ends at admission (sealed),
    /// and repeating the revoke finishes the deletion (later requests: plain).
    @Test func aRevocationWhoseSessionDeletionFailsIsA503AndARetryFinishesIt() async throws {
        try await Self.withPhone { client, admin, sessions, _, phoneKey, clientId in
            var phones: [WireSession] = []
            for _ in 0..<2 {
                let phone = WireSession(client: client)
                phone.clientKey = phoneKey
                try await phone.establish()
                phones.append(phone)
            }
            sessions.failClientDeletes.withLock { $0 = true }
            let failed = try await admin.call(.post, "/clients/\(clientId)/revoke", "{}")
            #expect(failed.status == 503 && failed.isSealed, "\(failed.json)")
            let message = (failed.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("/clients/\(clientId)/revoke"), "\(message)")
            #expect(try await admin.call(.get, "/clients/\(clientId)").json["revokedAt"] as? String != nil)
            let ended = try await phones[0].call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(ended.status == 401 && ended.errorCode == "unknown_session" && ended.isSealed)
            sessions.failClientDeletes.withLock { $0 = false }
            let finished = try await admin.call(.post, "/clients/\(clientId)/revoke", "{}")
            #expect(finished.status == 200 && finished.json["revokedAt"] != nil)
            let gone = try await phones[1].call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(gone.status == 401 && gone.errorCode == "unknown_session" && !gone.isSealed)
        }
    }

    /// A review finding: a key exchange whose client check ran before a
    /// revocation created its session after the revocation's `200`. The client
    /// is read again once the session exists, so the exchange is refused and
    /// leaves no session behind.
    @Test func aKeyExchangeRacingARevocationGetsNoSession() async throws {
        try await Self.withPhone { client, _, sessions, registry, phoneKey, clientId in
            // The revoke handler's two steps, straight on the stores (a request from inside this request
            // would wait for the test client's one connection).
            let revoked = Mutex(false)
            sessions.beforeCreateSession.withLock {
                $0 = {
                    let done = (try? await registry.revoke(clientId)) != nil
                    let deleted = (try? await sessions.deleteSessions(clientId: clientId)) != nil
                    revoked.withLock { $0 = done && deleted }
                }
            }
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            do {
                _ = try await phone.establish()
                Issue.record("a key exchange racing the revocation got a session")
            } catch WireError.status(let status, let text) {
                #expect(status == 401 && text.contains("client_not_authenticated"), "\(text)")
            }
            #expect(revoked.withLock { $0 })
            #expect(try await sessions.counts(now: Date()).sessions == 1, "only the admin's session is left")
        }
    }

    @Test func theClientsAPI() async throws {
        let (server, _, _) = try Self.server()
        try await server.run { client in
            let admin = WireSession(client: client)
            try await admin.establish()
            let phoneKey = Curve25519.Signing.PrivateKey()
            let phonePublic = Base64.encode(phoneKey.publicKey.rawRepresentation)
            func add(_ name: String, _ key: String, grants: String = "[]") async throws -> WireSession.Outcome {
                try await admin.call(
                    .post, "/clients", #"{"name":"\#(name)","publicKey":"\#(key)","grants":\#(grants)}"#)
            }
            let added = try await add(
                "phone", phonePublic, grants: #"[{"keys":["photos"],"allow":["crypto:encrypt"]}]"#)
            #expect(added.status == 200, "\(added.json)")
            let clientId = try #require(added.json["clientId"] as? String)
            #expect(added.json["accessKeys"] as? [Any] != nil && added.json["revokedAt"] == nil)
            // 400s with their field, then the 409s.
            func field(_ outcome: WireSession.Outcome) -> String? {
                (outcome.json["error"] as? [String: Any])?["field"] as? String
            }
            #expect(field(try await add("Phone", phonePublic)) == "name")
            #expect(field(try await add("cli_x", phonePublic)) == "name")
            #expect(field(try await add("tablet", Base64.encode(Data(count: 32)))) == "publicKey")
            let identity = Base64.encode(Data([1] + [UInt8](repeating: 0, count: 31)))
            #expect(field(try await add("tablet", identity)) == "publicKey")
            // y = 2 names no point of the curve: such a client could never sign a key exchange.
            let offCurve = Base64.encode(Data([2] + [UInt8](repeating: 0, count: 31)))
            #expect(field(try await add("tablet", offCurve)) == "publicKey")
            #expect(
                field(try await add("tablet", phonePublic, grants: #"[{"keys":["key_*"],"allow":["keys:read"]}]"#))
                    == "grants[0].keys[0]")
            #expect(
                field(try await add("tablet", phonePublic, grants: #"[{"keys":["x"],"allow":["clients:manage"]}]"#))
                    == "grants[0].keys")
            // Past the nine permissions a list holds a duplicate or an unknown name: refused at its index.
            let nine =
                #""keys:create","keys:read","keys:rotate","keys:manage","crypto:encrypt","crypto:decrypt","crypto:rewrap","crypto:datakey","clients:manage""#
            for extra in [#""keys:read""#, #""keys:delete""#] {
                #expect(
                    field(
                        try await add("tablet", phonePublic, grants: #"[{"keys":["*"],"allow":[\#(nine),\#(extra)]}]"#))
                        == "grants[0].allow[9]")
            }
            #expect(
                try await add("phone", Base64.encode(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation))
                    .errorCode == "name_in_use")
            #expect(try await add("tablet", phonePublic).errorCode == "public_key_in_use")
            // Show, list, grants, access keys.
            #expect(try await admin.call(.get, "/clients/phone").json["clientId"] as? String == clientId)
            #expect(try await admin.call(.get, "/clients/\(clientId)").json["name"] as? String == "phone")
            #expect(try await admin.call(.get, "/clients/nobody").errorCode == "client_not_found")
            #expect(field(try await admin.call(.get, "/clients/Bad%20Name")) == "client")
            let listed = try #require(
                try await admin.call(.get, "/clients?limit=1").json["clients"] as? [[String: Any]])
            #expect(listed.count == 1)
            let regranted = try await admin.call(
                .post, "/clients/phone/grants", #"{"grants":[{"keys":["*"],"allow":["keys:read"]}]}"#)
            #expect((regranted.json["grants"] as? [[String: Any]])?.first?["allow"] as? [String] == ["keys:read"])
            let created = try await admin.call(.post, "/clients/phone/access-keys", "{}")
            let accessKeyId = try #require(created.json["accessKeyId"] as? String)
            #expect((created.json["secretAccessKey"] as? String).flatMap(Base64.decodeStrict)?.count == 30)
            #expect(
                try await admin.call(.post, "/clients/phone/access-keys/AKIAAAAAAAAAAAAAAAAA/revoke", "{}").errorCode
                    == "access_key_not_found")
            #expect(field(try await admin.call(.post, "/clients/phone/access-keys/nope/revoke", "{}")) == "accessKeyId")
            let keyRevoked = try await admin.call(.post, "/clients/phone/access-keys/\(accessKeyId)/revoke", "{}")
            #expect((keyRevoked.json["accessKeys"] as? [[String: Any]])?.first?["revokedAt"] != nil)

            // The phone may not manage clients; its own 400s still come first.
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()
            #expect(try await phone.call(.get, "/clients").errorCode == "permission_denied")
            #expect(field(try await phone.call(.get, "/clients/Bad%20Name")) == "client")
            // Revoking ends its session at once; revoking again is idempotent.
            let revoked = try await admin.call(.post, "/clients/\(clientId)/revoke", "{}")
            #expect(revoked.status == 200 && revoked.json["revokedAt"] != nil)
            let again = try await admin.call(.post, "/clients/\(clientId)/revoke", "{}")
            #expect(again.status == 200 && again.json["revokedAt"] as? String == revoked.json["revokedAt"] as? String)
            let gone = try await phone.call(.post, "/crypto/random", #"{"bytes":1}"#)
            #expect(gone.status == 401 && gone.errorCode == "unknown_session" && !gone.isSealed)
            #expect(try await admin.call(.post, "/clients/phone/revoke", "{}").errorCode == "client_not_found")
            #expect(
                try await admin.call(.post, "/clients/\(clientId)/grants", #"{"grants":[]}"#).errorCode
                    == "client_revoked")
            // The last admin cannot go; revoking itself once another admin exists answers under the ended session.
            #expect(try await admin.call(.post, "/clients/admin/revoke", "{}").errorCode == "last_admin")
            #expect(try await admin.call(.post, "/clients/admin/grants", #"{"grants":[]}"#).errorCode == "last_admin")
            let rootKey = Curve25519.Signing.PrivateKey()
            let everything =
                #"[{"keys":["*"],"allow":["keys:create","keys:read","keys:rotate","keys:manage","crypto:encrypt","crypto:decrypt","crypto:rewrap","crypto:datakey","clients:manage"]}]"#
            #expect(
                try await add("root", Base64.encode(rootKey.publicKey.rawRepresentation), grants: everything).status
                    == 200)
            let selfRevoked = try await admin.call(.post, "/clients/admin/revoke", "{}")
            #expect(selfRevoked.status == 200 && selfRevoked.isSealed && selfRevoked.json["revokedAt"] != nil)
            #expect(try await admin.call(.get, "/session").errorCode == "unknown_session")
            // Section 7: client changes, the bootstrap and denials are in the audit log, naming the client.
            let log = server.config.auditLog
            var text = ""
            for _ in 0..<50 {
                text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                if text.contains("permission.denied") { break }
                try await Task.sleep(for: .milliseconds(40))
            }
            for event in [
                "client.bootstrap", "client.add", "client.grants", "client.revoke", "client.access-key.create",
                "client.access-key.revoke", "permission.denied", "\"clientName\":\"admin\"",
            ] {
                #expect(text.contains(event), "\(event) missing from the audit log")
            }
            // The bootstrap is a durable intent, then its result (a review: one entry, best effort, after it).
            let bootstrap = text.split(separator: "\n").filter { $0.contains("\"type\":\"client.bootstrap\"") }
            #expect(
                bootstrap.count == 2 && bootstrap[0].contains("\"outcome\":\"intent\"")
                    && bootstrap[1].contains("\"outcome\":\"success\"")
                    // The test server's key file was written before the start: said so (a review).
                    && bootstrap[1].contains(#""keySource":"existing-file""#), "\(bootstrap)")
            #expect(
                !text.contains((created.json["secretAccessKey"] as? String) ?? "-"), "a secret reached the audit log")
            // Every line is strict JSON (no member twice), as `kms audit verify` requires.
            for line in text.split(separator: "\n") {
                #expect((try? JSONParser.parse(Data(line.utf8))) != nil, "\(line.prefix(200))")
            }
        }
    }

    /// Done-when of issue 13: adding a client, a grant change or a revocation
    /// never answers 500, whatever the inner body (random mutations of valid ones).
    @Test func clientChangesNeverAnswer500() async throws {
        let (server, _, _) = try Self.server()
        try await server.run { client in
            let admin = WireSession(client: client)
            try await admin.establish()
            let key = Base64.encode(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            let valid = [
                (
                    "/clients",
                    #"{"name":"fuzz","publicKey":"\#(key)","grants":[{"keys":["a*"],"allow":["keys:read"]}]}"#
                ),
                ("/clients/admin/grants", #"{"grants":[{"keys":["*"],"allow":["clients:manage"]}]}"#),
                ("/clients/fuzz/revoke", "{}"), ("/clients/fuzz/access-keys", "{}"),
            ]
            let replacements = [
                "\"", "[", "]", "{", "}", ",", ":", "*", "null", "1e999", "\\u0000", "key_", "cli_", "-", "", "AAAA",
                String(repeating: "x", count: 300),
            ]
            var generator = SystemRandomNumberGenerator()
            var statuses: [Int: Int] = [:]
            for round in 0..<240 {
                let (path, body) = valid[round % valid.count]
                var text = Array(body)
                for _ in 0..<Int.random(in: 1...3, using: &generator) where !text.isEmpty {
                    let at = Int.random(in: 0..<text.count, using: &generator)
                    let length = min(text.count - at, Int.random(in: 0...4, using: &generator))
                    text.replaceSubrange(
                        at..<(at + length), with: replacements.randomElement(using: &generator) ?? "")
                }
                let outcome = try await admin.call(.post, path, String(text))
                statuses[outcome.status, default: 0] += 1
                #expect(outcome.status < 500, "\(path) \(String(text)) -> \(outcome.status) \(outcome.json)")
            }
            #expect(statuses.keys.contains(400))
        }
    }

    /// `/clients` handlers check `clients:manage` themselves, after their own
    /// 400s: every route the OpenAPI document marks `clients:manage` must
    /// refuse a valid request from a client without it, so a new route that
    /// forgot the check fails here.
    @Test func everyClientsManageRouteRefusesOtherClients() async throws {
        let (server, registry, _) = try Self.server()
        try await server.run { client in
            let phoneKey = Curve25519.Signing.PrivateKey()
            _ = try await registry.add(
                name: "phone", publicKey: phoneKey.publicKey.rawRepresentation,
                grants: [Grant(keys: [.any], allow: Permission.allCases.filter { $0 != .clientsManage })])
            let phone = WireSession(client: client)
            phone.clientKey = phoneKey
            try await phone.establish()
            // The denial's entry names the client it was after (an audit review: it named none), each target
            // thinned apart: the list's denial first does not hide the revocation's (a review).
            #expect(try await phone.call(.get, "/clients").status == 403)
            #expect(try await phone.call(.post, "/clients/admin/revoke", "{}").status == 403)
            // A name past 23 bytes (a lowercase hex secret fits the grammar) by its length.
            let long = String(repeating: "a1", count: 20)
            #expect(try await phone.call(.post, "/clients/\(long)/revoke", "{}").status == 403)
            var denials: [Substring] = []
            for _ in 0..<100 where denials.count < 3 {
                denials = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                    .filter { $0.contains(#""type":"permission.denied""#) }
                if denials.count < 3 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(denials.count == 3 && denials.contains { $0.contains(#""targetName":"admin""#) }, "\(denials)")
            #expect(denials.contains { $0.contains(#""targetName":"(not shown: 40 bytes)""#) }, "\(denials)")
            #expect(!denials.contains { $0.contains(long) })
            let document = try await client.execute(uri: "/openapi.json", method: .get)
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(buffer: document.body)) as? [String: Any])
            let paths = try #require(json["paths"] as? [String: [String: Any]])
            let newKey = Base64.encode(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            var checked = 0
            for (path, operations) in paths {
                for (method, operation) in operations {
                    guard (operation as? [String: Any])?["x-permission"] as? String == "clients:manage" else {
                        continue
                    }
                    let target = path.replacingOccurrences(of: "{client}", with: "phone")
                        .replacingOccurrences(of: "{accessKeyId}", with: "AKIAABCDEFGHIJ234567")
                    let body =
                        method == "get"
                        ? nil
                        : path == "/clients"
                            ? #"{"name":"tablet","publicKey":"\#(newKey)","grants":[]}"#
                            : path.hasSuffix("/grants") ? #"{"grants":[]}"# : "{}"
                    let outcome = try await phone.call(
                        HTTPRequest.Method(rawValue: method.uppercased()) ?? .get, target, body)
                    #expect(
                        outcome.status == 403 && outcome.errorCode == "permission_denied",
                        "\(method) \(path): \(outcome.json)")
                    checked += 1
                }
            }
            #expect(checked == 7, "routes marked clients:manage: \(checked)")
        }
    }
}
