import Crypto
import Foundation
import HummingbirdTesting
import KMSCore
import KMSProtocol
import KMSTestSupport
import Synchronization
import Testing

/// Issue 7 at the server: what is recorded, and failing closed without hanging.
@Suite struct AuditTests {
    @Test func operationsAreRecordedWithoutSecrets() async throws {
        let server = try TestServer()
        let auditLog = server.config.auditLog
        let token = WireSession.randomToken()
        let secretText = "very secret plaintext"
        let lines = try await server.run { client in
            let session = WireSession(client: client, token: token)
            try await session.establish()
            let keyId = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            _ = try await session.call(.post, "/keys/rotate", #"{"keyId":"\#(keyId)"}"#)
            let plaintext = Data(secretText.utf8).base64EncodedString()
            let sealed = try await session.call(
                .post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"\#(plaintext)"}"#)
            let ciphertext = try #require(sealed.json["ciphertext"] as? String)
            _ = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"kms:v1:nope"}"#)
            // A failure names the key it was checked against (a review found it named none).
            let wrongContext = try await session.call(
                .post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)","aad":"d3Jvbmc="}"#)
            #expect(wrongContext.errorCode == "decryption_failed")
            let failures = try String(contentsOf: auditLog, encoding: .utf8).split(separator: "\n").filter {
                $0.contains("\"type\":\"crypto.decrypt\"") && $0.contains("\"outcome\":\"failure\"")
            }
            #expect(failures.contains { $0.contains("\"keyId\":\"\(keyId)\"") }, "\(failures)")
            _ = try await session.call(.post, "/session/rotate-token", "{}")
            return try String(contentsOf: auditLog, encoding: .utf8)
        }
        for type in [
            "server.start", "session.key-exchange", "key.generate", "key.rotate", "crypto.encrypt", "crypto.decrypt",
            "session.rotate-token",
        ] {
            #expect(lines.contains("\"type\":\"\(type)\""), "\(type)")
        }
        #expect(lines.contains("\"outcome\":\"intent\"") && lines.contains("\"outcome\":\"failure\""))
        #expect(
            !lines.contains(token) && !lines.contains(secretText)
                && !lines.contains(Data(secretText.utf8).base64EncodedString()))
    }

    /// A crypto call whose key does not exist is refused `404` while its permission is decided, before the
    /// call runs: its failure entry names the key as asked (an audit review: none was written, so a decrypt
    /// of a deleted key's ciphertexts left no trace), on both doors; a DryRun records nothing. Without client
    /// identity the call runs and fails as it did, its entry now naming the key as asked too.
    @Test(arguments: ["required", "off"])
    func cryptoCallsOnAMissingKeyAreRecorded(clientAuth: String) async throws {
        try await AWSDoorTests.withDoor(["KMS_CLIENT_AUTH": clientAuth]) { server, session, door in
            let missing = "key_AAAAAAAAAAAAAAAAAAAAAA"
            #expect(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"nope","plaintext":"aGk="}"#).status == 404)
            let orphan = "kms:v1:\(missing):2:" + String(repeating: "A", count: 40)
            #expect(try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(orphan)"}"#).status == 404)
            #expect(try await session.call(.post, "/crypto/datakey", #"{"keyId":"\#(missing)"}"#).status == 404)
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, "admin")
            let encrypt = #"{"KeyId":"alias/nope","Plaintext":"aGk="}"#
            #expect(try await door.send("Encrypt", encrypt, accessKeyId: accessKeyId, secret: secret).status == 400)
            let dryRun = #"{"KeyId":"alias/nope","Plaintext":"aGk=","DryRun":true}"#
            #expect(try await door.send("Encrypt", dryRun, accessKeyId: accessKeyId, secret: secret).status == 400)
            // A name that may be a secret pasted in the wrong place is recorded by its length only (two
            // reviews: the session's token as a keyId, and the access key's secret as a KeyId, were written
            // whole beside the access key id); a UUID is named by its keyId too.
            let token = session.token
            #expect(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(token)","plaintext":"aGk="}"#).status
                    == 404)
            let pasted = #"{"KeyId":"\#(secret)","Plaintext":"aGk="}"#
            #expect(try await door.send("Encrypt", pasted, accessKeyId: accessKeyId, secret: secret).status == 400)
            let uuid = try #require(AWSKeyId.uuid(fromNative: missing))
            let withoutPlaintext = #"{"KeyId":"\#(uuid)","KeySpec":"AES_256"}"#
            #expect(
                try await door.send(
                    "GenerateDataKeyWithoutPlaintext", withoutPlaintext, accessKeyId: accessKeyId, secret: secret
                ).status == 400)
            // A ciphertext naming a key id past the server's form (the parser takes up to 60 characters).
            let hidden = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"
            let crafted = "kms:v1:key_\(hidden):1:" + String(repeating: "A", count: 40)
            #expect(try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(crafted)"}"#).status == 404)
            let log = try String(contentsOf: server.config.auditLog, encoding: .utf8)
            #expect(!log.contains(token) && !log.contains(secret) && !log.contains(hidden))
            let failures = log.split(separator: "\n").filter { $0.contains(#""code":"key_not_found""#) }
            #expect(failures.count == 8, "\(failures)")
            #expect(failures.filter { $0.contains(#""key":"(not shown: "#) }.count == 3, "\(failures)")
            #expect(
                failures.contains {
                    $0.contains(#""type":"crypto.datakey""#) && $0.contains(#""key":"\#(uuid)""#)
                        && $0.contains(#""keyId":"\#(missing)""#) && $0.contains(#""withoutPlaintext":"true""#)
                }, "\(failures)")
            #expect(
                failures.contains { $0.contains(#""type":"crypto.encrypt""#) && $0.contains(#""key":"nope""#) },
                "\(failures)")
            #expect(
                failures.contains {
                    $0.contains(#""type":"crypto.decrypt""#) && $0.contains(#""keyId":"\#(missing)""#)
                })
            #expect(
                failures.contains {
                    $0.contains(#""type":"crypto.datakey""#) && $0.contains(#""key":"\#(missing)""#)
                        && $0.contains(#""keyId":"\#(missing)""#)
                })
            #expect(
                failures.contains {
                    $0.contains(#""type":"crypto.encrypt""#) && $0.contains(#""key":"alias/nope""#)
                        && $0.contains(#""door":"aws""#)
                })
        }
    }

    /// An operation's entry carries the request id its answer and its request log line carry, on both doors
    /// (an observability review: the two logs joined by time and address only).
    @Test func entriesCarryTheRequestId() async throws {
        let lines = LogCounter()
        try await AWSDoorTests.withDoor(log: lines) { server, session, door in
            let generated = try await session.call(.post, "/keys/generate", "{}")
            let nativeId = try #require(generated.raw.headers.first { $0.name.canonicalName == "x-request-id" }?.value)
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, "admin")
            let keyId = try #require(generated.json["keyId"] as? String)
            let uuid = try #require(AWSKeyId.uuid(fromNative: keyId))
            let sealed = try await door.send(
                "Encrypt", #"{"KeyId":"\#(uuid)","Plaintext":"aGk="}"#, accessKeyId: accessKeyId, secret: secret)
            #expect(sealed.status == 200)
            let awsId = try #require(lines.values("aws request", "requestId").last)
            let log = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
            let generates = log.filter { $0.contains(#""type":"key.generate""#) }
            #expect(generates.count == 2 && generates.allSatisfy { $0.contains(#""requestId":"\#(nativeId)""#) })
            #expect(
                log.contains { $0.contains(#""type":"crypto.encrypt""#) && $0.contains(#""requestId":"\#(awsId)""#) },
                "\(awsId)")
        }
    }

    /// An AWS `Decrypt` or `ReEncrypt` whose `KeyId` names another key than the blob's is refused
    /// `IncorrectKeyException` with a failure entry naming the blob's key and the name given (an audit
    /// review: it wrote none); a DryRun records nothing.
    @Test func aDecryptNamingAnotherKeyIsRecorded() async throws {
        try await AWSDoorTests.withDoor { server, session, door in
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, "admin")
            func send(_ operation: String, _ body: String) async throws -> (status: Int, json: [String: Any]) {
                try await door.send(operation, body, accessKeyId: accessKeyId, secret: secret)
            }
            let first = try await send("CreateKey", "{}")
            let keyId = try #require((first.json["KeyMetadata"] as? [String: Any])?["KeyId"] as? String)
            #expect(
                try await send("CreateAlias", #"{"AliasName":"alias/other","TargetKeyId":"\#(keyId)"}"#).status == 200)
            let second = try await send("CreateKey", "{}")
            let secondId = try #require((second.json["KeyMetadata"] as? [String: Any])?["KeyId"] as? String)
            let sealed = try await send("Encrypt", #"{"KeyId":"\#(secondId)","Plaintext":"aGk="}"#)
            let blob = try #require(sealed.json["CiphertextBlob"] as? String)
            let calls = [
                ("Decrypt", #"{"CiphertextBlob":"\#(blob)","KeyId":"alias/other"}"#),
                (
                    "ReEncrypt",
                    #"{"CiphertextBlob":"\#(blob)","SourceKeyId":"\#(keyId)","DestinationKeyId":"\#(keyId)"}"#
                ),
                ("Decrypt", #"{"CiphertextBlob":"\#(blob)","KeyId":"alias/other","DryRun":true}"#),
            ]
            for (operation, body) in calls {
                let refused = try await send(operation, body)
                #expect(refused.json["__type"] as? String == "IncorrectKeyException", "\(operation) \(refused.json)")
            }
            let secondNative = try #require(AWSKeyId.native(fromUUID: secondId))
            let entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                .filter { $0.contains(#""code":"IncorrectKeyException""#) }
            #expect(entries.count == 2, "\(entries)")
            #expect(entries.allSatisfy { $0.contains(#""door":"aws""#) })
            #expect(entries.first?.contains(#""type":"crypto.decrypt""#) == true)
            #expect(entries.first?.contains(#""keyId":"\#(secondNative)","key":"alias/other""#) == true)
            // A rewrap's source, named as the source (`keyId` is a rewrap's destination elsewhere).
            #expect(entries.last?.contains(#""type":"crypto.rewrap""#) == true)
            #expect(entries.last?.contains(#""sourceKeyId":"\#(secondNative)","sourceKey":"\#(keyId)""#) == true)
        }
    }

    /// A denied name is recorded by the same rule on both doors: an alias past 23 bytes (a token given as
    /// `alias/$X`) by its length only (a review: the AWS door's `permission.denied` recorded it whole).
    @Test func aDeniedNameThatMayBeASecretIsNotRecorded() async throws {
        try await AWSDoorTests.withDoor(["KMS_CLIENT_AUTH": "required"]) { server, session, door in
            let device = Curve25519.Signing.PrivateKey()
            let publicKey = Base64.encode(device.publicKey.rawRepresentation)
            let grants = #"[{"keys":["photos"],"allow":["crypto:encrypt"]}]"#
            let added = try await session.call(
                .post, "/clients", #"{"name":"scoped","publicKey":"\#(publicKey)","grants":\#(grants)}"#)
            let clientId = try #require(added.json["clientId"] as? String)
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, clientId)
            let token = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"
            let denied = try await door.send(
                "Encrypt", #"{"KeyId":"alias/\#(token)","Plaintext":"aGk="}"#, accessKeyId: accessKeyId, secret: secret)
            #expect(denied.json["__type"] as? String == "AccessDeniedException", "\(denied.json)")
            // The audit writer takes denials in the background.
            var entries: [Substring] = []
            for _ in 0..<50 where entries.isEmpty {
                entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                    .filter { $0.contains(#""type":"permission.denied""#) }
                if entries.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(entries.count == 1 && entries.allSatisfy { $0.contains(#""key":"(not shown: 50 bytes)""#) })
            // The native door by the same rule: the same text as a keyId (44 bytes, an alias's form).
            let scoped = WireSession(client: session.client)
            scoped.clientKey = device
            _ = try await scoped.establish()
            let native = try await scoped.call(.post, "/crypto/encrypt", #"{"keyId":"\#(token)","plaintext":"aGk="}"#)
            #expect(native.status == 403 && native.errorCode == "permission_denied")
            for _ in 0..<50 where entries.count < 2 {
                entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                    .filter { $0.contains(#""type":"permission.denied""#) }
                if entries.count < 2 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(
                entries.count == 2 && entries.last?.contains(#""key":"(not shown: 44 bytes)""#) == true, "\(entries)")
            #expect(!(try String(contentsOf: server.config.auditLog, encoding: .utf8)).contains(token))
            // A name that names no key has no keyId; a real alias past 23 bytes, shown by its length, is recorded
            // with the keyId it names on both doors (the last notes' Left: the denial hid which key was asked for).
            #expect(!entries.contains { $0.contains(#""keyId":"#) }, "\(entries)")
            // Two real aliases of one length on the native door (shown alike, they were one in the thinning: the
            // review of d502b00) and a third on the AWS door: each its own entry with its keyId.
            var ids: [String: String] = [:]
            for name in ["x1", "x2", "x3"] {
                let generated = try await session.call(
                    .post, "/keys/generate", #"{"alias":"family-photos-2026-archive-\#(name)"}"#)
                ids[name] = try #require(generated.json["keyId"] as? String)
            }
            for name in ["x1", "x2"] {
                let denied = try await scoped.call(
                    .post, "/crypto/encrypt", #"{"keyId":"family-photos-2026-archive-\#(name)","plaintext":"aGk="}"#)
                #expect(denied.status == 403)
            }
            let awsLong = try await door.send(
                "Encrypt", #"{"KeyId":"alias/family-photos-2026-archive-x3","Plaintext":"aGk="}"#,
                accessKeyId: accessKeyId, secret: secret)
            #expect(awsLong.json["__type"] as? String == "AccessDeniedException", "\(awsLong.json)")
            for _ in 0..<50 where entries.count < 5 {
                entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                    .filter { $0.contains(#""type":"permission.denied""#) }
                if entries.count < 5 { try await Task.sleep(for: .milliseconds(100)) }
            }
            for (name, shown) in [("x1", 29), ("x2", 29), ("x3", 35)] {
                let expected = #""key":"(not shown: \#(shown) bytes)","keyId":"\#(ids[name] ?? "-")""#
                #expect(entries.contains { $0.contains(expected) }, "\(name): \(entries)")
            }
            #expect(!entries.contains { $0.contains("family-photos") })
        }
    }

    /// An alias change denied on a key names that key (`keyId`): the key a new alias would give its client
    /// more on (native door), and the key an alias names now (both doors; the final read of 2026-12-06:
    /// these paths' keyId had no test).
    @Test func aliasDenialsNameTheKeyTheyConcern() async throws {
        try await AWSDoorTests.withDoor(["KMS_CLIENT_AUTH": "required"]) { server, session, door in
            // Two keys, each with one alias the client may manage as a name (another would let it manage the key).
            var ids: [String] = []
            for (key, alias) in [("secret-k", "tmp-1"), ("secret-j", "tmp-2")] {
                let generated = try await session.call(.post, "/keys/generate", #"{"alias":"\#(key)"}"#)
                ids.append(try #require(generated.json["keyId"] as? String))
                let named = try await session.call(.post, "/aliases", #"{"alias":"\#(alias)","keyId":"\#(key)"}"#)
                #expect(named.status == 200)
            }
            let device = Curve25519.Signing.PrivateKey()
            let publicKey = Base64.encode(device.publicKey.rawRepresentation)
            let grants =
                #"[{"keys":["tmp-*"],"allow":["keys:manage"]},{"keys":["tmp-dec*"],"allow":["crypto:decrypt"]}]"#
            let added = try await session.call(
                .post, "/clients", #"{"name":"aliaser","publicKey":"\#(publicKey)","grants":\#(grants)}"#)
            let clientId = try #require(added.json["clientId"] as? String)
            let native = WireSession(client: session.client)
            native.clientKey = device
            _ = try await native.establish()
            // It manages secret-k through tmp-1, but a new alias tmp-dec1 would give it decrypt there.
            let gaining = try await native.call(.post, "/aliases", #"{"alias":"tmp-dec1","keyId":"secret-k"}"#)
            #expect(gaining.errorCode == "permission_denied", "\(gaining.json)")
            // The name tmp-1 is its to manage, the key it names (judged without it) is not.
            let nativeDenied = try await native.call(.delete, "/aliases/tmp-1")
            #expect(nativeDenied.errorCode == "permission_denied", "\(nativeDenied.status) \(nativeDenied.json)")
            // On the AWS door, the same for tmp-2.
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, clientId)
            let deleted = try await door.send(
                "DeleteAlias", #"{"AliasName":"alias/tmp-2"}"#, accessKeyId: accessKeyId, secret: secret)
            #expect(deleted.json["__type"] as? String == "AccessDeniedException", "\(deleted.json)")
            var entries: [Substring] = []
            for _ in 0..<50 where entries.count < 3 {
                entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                    .filter { $0.contains(#""type":"permission.denied""#) }
                if entries.count < 3 { try await Task.sleep(for: .milliseconds(100)) }
            }
            let gained = #""permission":"crypto:decrypt","key":"secret-k","keyId":"\#(ids[0])""#
            #expect(entries.contains { $0.contains(gained) }, "\(entries)")
            #expect(entries.contains { $0.contains(#""key":"tmp-1","keyId":"\#(ids[0])""#) }, "\(entries)")
            #expect(entries.contains { $0.contains(#""key":"alias/tmp-2","keyId":"\#(ids[1])""#) }, "\(entries)")
        }
    }

    /// The AWS door's data keys with and without plaintext are told apart in the log (an audit review).
    @Test func aDataKeyWithoutPlaintextSaysSo() async throws {
        try await AWSDoorTests.withDoor { server, session, door in
            let keyId = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            let (accessKeyId, secret) = try await AWSDoorTests.accessKey(session, "admin")
            let arn = try #require(AWSKeyId.uuid(fromNative: keyId))
            for operation in ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext"] {
                let answer = try await door.send(
                    operation, #"{"KeyId":"\#(arn)","KeySpec":"AES_256"}"#, accessKeyId: accessKeyId, secret: secret)
                #expect(answer.status == 200, "\(operation): \(answer.json)")
            }
            let entries = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                .filter { $0.contains(#""type":"crypto.datakey""#) }
            #expect(entries.map { $0.contains(#""withoutPlaintext":"true""#) } == [false, true], "\(entries)")
        }
    }

    /// A client change with nothing left to do (grants the client has, a repeated revocation of a client or
    /// an access key) is marked `changed=false`, as a key's no-op is (an audit review: each repeat read as a
    /// fresh success, so one access key had three revocation times).
    @Test func aRepeatedClientChangeIsMarkedUnchanged() async throws {
        let server = try TestServer()
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let publicKey = Base64.encode(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            let grants = #"[{"keys":["*"],"allow":["crypto:encrypt"]}]"#
            let added = try await session.call(
                .post, "/clients", #"{"name":"phone","publicKey":"\#(publicKey)","grants":\#(grants)}"#)
            #expect(added.status == 200)
            let (accessKeyId, _) = try await AWSDoorTests.accessKey(session, "phone")
            for target in [
                "/clients/phone/grants", "/clients/phone/grants", "/clients/phone/access-keys/\(accessKeyId)/revoke",
                "/clients/phone/access-keys/\(accessKeyId)/revoke", "/clients/phone/revoke",
            ] {
                let body = target.hasSuffix("grants") ? #"{"grants":\#(grants)}"# : "{}"
                #expect(try await session.call(.post, target, body).status == 200, "\(target)")
            }
            // The client, by its id now (a revoked client's name no longer resolves), and its key again.
            let clientId = try #require(added.json["clientId"] as? String)
            for target in ["/clients/\(clientId)/revoke", "/clients/\(clientId)/access-keys/\(accessKeyId)/revoke"] {
                #expect(try await session.call(.post, target, "{}").status == 200, "\(target)")
            }
            let outcomes = try String(contentsOf: server.config.auditLog, encoding: .utf8).split(separator: "\n")
                .filter { line in
                    ["client.grants", "client.revoke", "client.access-key.revoke"].contains { type in
                        line.contains(#""type":"\#(type)""#)
                    } && line.contains(#""outcome":"success""#)
                }
            #expect(outcomes.count == 7, "\(outcomes)")
            let unchanged = outcomes.map { $0.contains(#""changed":"false""#) }
            // The grants it was enrolled with, twice; its key revoked, then again; the client revoked, then
            // again; its key, revoked with the client.
            #expect(unchanged == [true, true, false, true, false, true, true], "\(outcomes)")
        }
    }

    /// A review finding: every failed key exchange, which needs no authentication, wrote an entry,
    /// so a loop of junk exchanges grew the log at its request rate. One is written per address and
    /// code a minute, with how many were left out since; a successful exchange is always written.
    @Test func failedKeyExchangesAreThinnedPerAddressAndCode() async throws {
        let server = try TestServer(["KMS_CLIENT_AUTH": "required"])
        let auditLog = server.config.auditLog
        try await server.run { client in
            func junk(token: String) async throws -> String? {
                try await WireSession(client: client).keyExchange(body: "{}", token: token).errorCode
            }
            func failures() throws -> [String] {
                try String(contentsOf: auditLog, encoding: .utf8).split(separator: "\n").map(String.init).filter {
                    $0.contains(#""type":"session.key-exchange""#) && $0.contains(#""outcome":"failure""#)
                }
            }
            let token = WireSession.randomToken()
            for _ in 0..<20 {
                #expect(try await junk(token: "x") == "invalid_token")
                #expect(try await junk(token: token) == "invalid_request")
            }
            var written = try failures()
            #expect(written.count == 2, "\(written)")
            #expect(written.allSatisfy { $0.contains(#""suppressed":"0""#) }, "\(written)")
            // A minute later the next one is written, with the count of the address's failures left out.
            server.clock.advance(milliseconds: 60_000)
            #expect(try await junk(token: "x") == "invalid_token")
            written = try failures()
            #expect(written.count == 3 && written.last?.contains(#""suppressed":"38""#) == true, "\(written)")
            // An unknown client key (judged before any RSA work) is thinned too, per key as sent.
            let stranger = Curve25519.Signing.PrivateKey()
            for _ in 0..<5 {
                let session = WireSession(client: client)
                session.clientKey = stranger
                await #expect(throws: (any Error).self) { try await session.establish() }
            }
            let other = WireSession(client: client)
            other.clientKey = Curve25519.Signing.PrivateKey()
            await #expect(throws: (any Error).self) { try await other.establish() }
            let unauthenticated = try failures().filter { $0.contains(#""code":"client_not_authenticated""#) }
            #expect(unauthenticated.count == 2, "\(unauthenticated)")
            // A new client key on every request, one a second (under the ten a second in all): the address
            // has ten lines a minute (a probe wrote ten a second from one host this way).
            server.clock.advance(milliseconds: 60_000)
            for _ in 0..<30 {
                server.clock.advance(milliseconds: 1_000)
                let varied = WireSession(client: client)
                varied.clientKey = Curve25519.Signing.PrivateKey()
                await #expect(throws: (any Error).self) { try await varied.establish() }
            }
            let varied = try failures().filter { $0.contains(#""code":"client_not_authenticated""#) }
            #expect(varied.count == 12, "\(varied.count) lines")
            // The address's next line says how many were left out, whatever keys they sent (a review: each
            // line said 0, as no key had been seen twice).
            #expect(varied.last?.contains(#""suppressed":"0""#) == true, "\(varied)")
            server.clock.advance(milliseconds: 31_000)
            let next = WireSession(client: client)
            next.clientKey = Curve25519.Signing.PrivateKey()
            await #expect(throws: (any Error).self) { try await next.establish() }
            let counted = try failures().filter { $0.contains(#""code":"client_not_authenticated""#) }
            #expect(
                counted.count == 13 && counted.last?.contains(#""suppressed":"20""#) == true, "\(counted.last ?? "")")
            // A real exchange is recorded whatever came before.
            try await WireSession(client: client).establish()
            let exchanges = try String(contentsOf: auditLog, encoding: .utf8).split(separator: "\n").filter {
                $0.contains(#""type":"session.key-exchange""#) && !$0.contains(#""outcome":"failure""#)
            }
            #expect(exchanges.count == 1)
            // identity-v1 section 7, the clientKey as sent, also when the body is refused for another member
            // (a review: none was recorded); a value not of its form, and long, is recorded by its length.
            let sentKey = "SHA256:" + String(repeating: "ab", count: 32)
            for (clientKey, recorded) in [
                (sentKey, sentKey), (String(repeating: "k", count: 300), "(not shown: 300 bytes)"),
            ] {
                server.clock.advance(milliseconds: 61_000)
                let refused = try await WireSession(client: client).keyExchange(
                    body: #"{"clientKey":"\#(clientKey)","extra":1}"#, token: WireSession.randomToken())
                #expect(refused.errorCode == "invalid_request")
                let line = try failures().last ?? ""
                #expect(line.contains(#""clientKey":"\#(recorded)""#) && !line.contains("kkkkkkkkkkkk"), "\(line)")
            }
        }
    }

    /// Issue 17: a 500 KB alias or keyId is refused before the intent entry,
    /// and no audit field holds more than 256 bytes of what a client sent.
    @Test func oversizedFieldsDoNotGrowTheAuditLog() async throws {
        let server = try TestServer(["KMS_MAX_BODY_BYTES": "2000000"])
        let auditLog = server.config.auditLog
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let before = try Data(contentsOf: auditLog).count
            let huge = String(repeating: "a", count: 500_000)
            let generate = try await session.call(.post, "/keys/generate", #"{"alias":"\#(huge)"}"#)
            #expect(generate.status == 400 && generate.errorField == "alias")
            let rotate = try await session.call(.post, "/keys/rotate", #"{"keyId":"\#(huge)"}"#)
            #expect(rotate.status == 404)
            let grown = try Data(contentsOf: auditLog).count - before
            #expect(grown < 4096, "the audit log grew by \(grown) bytes")
        }
        let event = AuditEvent("x", [("key", String(repeating: "é", count: 1000))])
        let value = try #require(event.fields.first?.1)
        #expect(
            value.utf8.count <= AuditEvent.maxFieldBytes && value.hasSuffix("bytes]") && value.contains("truncated"))
        // Grants are kept whole: an entry must say who got which permission (review, 2026-12-03).
        let grants = Grant.auditText([
            Grant(keys: [.prefix("team-a-"), .prefix("team-b-")], allow: [.cryptoEncrypt, .cryptoDecrypt]), .everything,
            .everything,
        ])
        #expect(grants.utf8.count > AuditEvent.maxFieldBytes)
        let added = AuditEvent(
            "client.add",
            Grant.addAuditFields(
                name: "phone", publicKey: Data(repeating: 1, count: 32), grants: [.everything, .everything]))
        #expect(added.fields.first { $0.0 == "grants" }?.1 == Grant.auditText([.everything, .everything]))
        #expect(AuditEvent("client.grants", [("grants", grants)]).fields.first?.1 == grants)
    }

    @Test func aFailingAuditLogRefusesAuditedOperationsOnly() async throws {
        var server = try TestServer(["KMS_AUDIT_TIMEOUT_MS": "3000"])
        let writer = try FlakyAuditWriter(url: server.folder.appendingPathComponent("audit.log"))
        server.dependencies.auditWriter = writer
        let lines = LogCounter()
        server.dependencies.logger = lines.logger
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let keyId = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            writer.failing.withLock { $0 = true }
            let encrypt = try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":""}"#)
            #expect(encrypt.status == 503 && encrypt.errorCode == "audit_unavailable" && encrypt.isSealed)
            #expect(encrypt.json["ciphertext"] == nil)
            let generate = try await session.call(.post, "/keys/generate", #"{"alias":"not-made"}"#)
            #expect(generate.status == 503)
            let rotate = try await session.call(.post, "/keys/rotate", #"{"keyId":"\#(keyId)"}"#)
            #expect(rotate.status == 503)
            // The failure is logged when it starts, not once a batch, and each 503 is not a line of its own
            // (a review filled a disk: 525 and 488 lines).
            #expect(lines.count("audit log write failed; refusing audited operations until it works") == 1)
            // What a monitor reads says so, where /healthz still answers ok (an operator's review).
            let failingMetrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(String(buffer: failingMetrics.body).contains("\nkms_audit_log_writable 0"))
            // Nor is each best-effort entry lost meanwhile (the final review: a loop of random wrote a line each).
            for _ in 0..<3 { #expect(try await session.call(.post, "/crypto/random", #"{"bytes":4}"#).status == 200) }
            #expect(lines.count("could not write an audit entry") == 0, "\(lines.counts.withLock { $0 })")
            // Nothing changed, and requests that need no entry still work.
            #expect(try await session.call(.get, "/keys/\(keyId)").json["activeVersion"] as? Int == 1)
            #expect(try await session.call(.get, "/keys/not-made").errorCode == "key_not_found")
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            // A hanging disk answers 503 within the timeout, not never.
            writer.failing.withLock { $0 = false }
            writer.hanging.withLock { $0 = true }
            let start = ContinuousClock.now
            #expect(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":""}"#).status == 503
            )
            #expect(ContinuousClock.now - start < .seconds(15))  // generous: the disk hangs until released below
            writer.hanging.withLock { $0 = false }
            // Recording resumes by itself, and says so once.
            #expect(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":""}"#).status == 200
            )
            #expect(lines.count("audit log writes work again; audited operations are accepted") == 1)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(
                String(buffer: metrics.body).contains("\nkms_audit_log_writable 1"), "\(String(buffer: metrics.body))")
            #expect(lines.count("audit log write failed; refusing audited operations until it works") == 1)
        }
    }
}
