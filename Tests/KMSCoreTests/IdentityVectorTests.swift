import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Testing

/// identity-v1 section 11's vectors and the rules of sections 4, 5 and 13 that
/// need no server: transcript, signature, key file, client key, patterns,
/// grants, the key decision, weak public keys.
@Suite struct IdentityVectorTests {
    static let seed = Data(hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    static let keyFile = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
        -----END PRIVATE KEY-----

        """

    @Test func transcriptSignatureAndClientKey() throws {
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: Self.seed)
        #expect(Base64.encode(key.publicKey.rawRepresentation) == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
        #expect(
            ClientAuth.fingerprint(rawPublicKey: key.publicKey.rawRepresentation)
                == "SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9")
        let wrapped = Data((0..<512).map { UInt8($0 % 256) })
        #expect(
            Hex.encode(SHA256.hash(data: wrapped)) == "110009dcee21620b166f3abfecb5eff7a873be729d1c2d53822e7acc5f34eb9b"
        )
        let transcript = ClientAuth.transcript(
            sessionId: "kP3x9QvZ2mWc7RtY5bLn8A", wrappedKey: wrapped,
            token: "identity-v1-vector-token_0123456789abcdef",
            serverFingerprint: "SHA256:d29f9bb3d551e47271481e641f06864b2efa4e079eb49be9f2b7c9e2ae740d2a")
        #expect(transcript.count == 243)
        #expect(
            String(decoding: transcript, as: UTF8.self)
                == "kms-v1/client-auth\nkP3x9QvZ2mWc7RtY5bLn8A\n110009dcee21620b166f3abfecb5eff7a873be729d1c2d53822e7acc5f34eb9b\n880b170136b25ad3af7ec50cc7c575b4448c45d417e8770c77002399e4c66602\nSHA256:d29f9bb3d551e47271481e641f06864b2efa4e079eb49be9f2b7c9e2ae740d2a"
        )
        let signature = try ClientAuth.sign(transcript, with: key)
        #expect(
            Base64.encode(signature)
                == "qxY+yc7r3PbpT97/RXpyKdzKcaq++y1g8TgBUy9aPckK1NV2MePag5GQ7foPnXi6X0/0rIT0kNSPcrXCvknwCw==")
        #expect(ClientAuth.verify(signature, transcript: transcript, publicKey: key.publicKey))
        var other = transcript
        other[other.count - 1] ^= 1
        #expect(!ClientAuth.verify(signature, transcript: other, publicKey: key.publicKey))
        #expect(
            ClientAuth.isWellFormedClientKey("SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"))
        #expect(
            !ClientAuth.isWellFormedClientKey("SHA256:21FE31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9")
        )
        #expect(!ClientAuth.isWellFormedClientKey("SHA256:21fe"))
    }

    @Test func keyFileReadsTheRFC8410FormOnly() throws {
        let key = try ClientKeyFile.parse(Self.keyFile)
        #expect(key.rawRepresentation == Self.seed)
        #expect(ClientKeyFile.pem(key) == Self.keyFile)
        #expect(
            try ClientKeyFile.parse(Self.keyFile.replacingOccurrences(of: "\n", with: "\r\n")).rawRepresentation
                == Self.seed)
        // The same seed with the public key embedded (RFC 8410 section 10.3's second form) is refused.
        let withPublic =
            "MFECAQEwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9ggSEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        #expect(throws: ClientKeyFile.ReadError.notEd25519PKCS8) {
            try ClientKeyFile.parse("-----BEGIN PRIVATE KEY-----\n\(withPublic)\n-----END PRIVATE KEY-----\n")
        }
        #expect(throws: ClientKeyFile.ReadError.notPEM) { try ClientKeyFile.parse("not a key") }
    }

    @Test func patternsOfSection11() throws {
        let keyId = "key_AAECAwQFBgcICQoLDA0ODw"
        let alias = "backup-photos"
        for text in ["*", keyId, "backup-photos", "backup-*", "backup-photos*"] {
            let pattern = try #require(KeyPattern(text), "\(text)")
            #expect(pattern.matches(keyId: keyId, alias: alias), "\(text)")
            #expect(pattern.text == text)
        }
        for text in ["backup", "Backup-*", "key*"] {
            let pattern = try #require(KeyPattern(text), "\(text)")
            #expect(!pattern.matches(keyId: keyId, alias: alias), "\(text)")
        }
        for text in ["key_*", "*-photos", "back*up", "", String(repeating: "a", count: 65), "generate", "-x*", "**"] {
            #expect(KeyPattern(text) == nil, "\(text)")
        }
        #expect(KeyPattern("generate*") == .prefix("generate"))
    }

    @Test func grantsAreParsedWithFieldPaths() throws {
        func parse(_ json: String) throws(RequestFieldError) -> [Grant] {
            let value = (try? JSONParser.parse(Data(json.utf8))) ?? .null
            return try Grant.parseList(value)
        }
        func field(_ json: String) -> String? {
            do {
                _ = try parse(json)
                return nil
            } catch { return error.field }
        }
        let grants = try parse(
            #"[{"keys":["photos","backup-*"],"allow":["crypto:encrypt"]},{"allow":["keys:read"],"keys":["*"]}]"#)
        #expect(grants.count == 2 && grants[0].keys == [.alias("photos"), .prefix("backup-")])
        #expect(try parse("[]").isEmpty)
        #expect(
            field(#"[{"keys":["*"],"allow":["crypto:encrypt"]},{"keys":["key_*"],"allow":["keys:read"]}]"#)
                == "grants[1].keys[0]")
        #expect(field(#"[{"keys":["*"],"allow":["crypto:*"]}]"#) == "grants[0].allow[0]")
        #expect(field(#"[{"keys":["a","a"],"allow":["keys:read"]}]"#) == "grants[0].keys[1]")
        #expect(field(#"[{"keys":[],"allow":["keys:read"]}]"#) == "grants[0].keys")
        #expect(field(#"[{"keys":["*"],"allow":["keys:read"],"x":1}]"#) == "grants[0].x")
        #expect(field(#"[{"keys":["photos"],"allow":["clients:manage"]}]"#) == "grants[0].keys")
        #expect(field(#"{"keys":["*"]}"#) == "grants")
        let many =
            "[" + Array(repeating: #"{"keys":["*"],"allow":["keys:read"]}"#, count: 33).joined(separator: ",") + "]"
        #expect(field(many) == "grants")
        let patterns = (0...64).map { "\"a\($0)\"" }.joined(separator: ",")
        #expect(field(#"[{"keys":[\#(patterns)],"allow":["keys:read"]}]"#) == "grants[0].keys")
    }

    @Test func aForbiddenKeyAndAMissingOneLookAlike() async throws {
        let photos = KeyAccess.Names(keyId: "key_AAECAwQFBgcICQoLDA0ODw", alias: "photos")
        let secret = KeyAccess.Names(keyId: "key_BBECAwQFBgcICQoLDA0ODw", alias: "secret")
        let resolve: (String) async throws(KMSError) -> KeyAccess.Names? = { name in
            [photos, secret].first { $0.keyId == name || $0.aliases.contains(name) }
        }
        let grants = [Grant(keys: [.alias("photos"), .alias("gone")], allow: [.cryptoEncrypt])]
        func code(_ name: String) async -> ErrorCode? {
            do {
                _ = try await KeyAccess.decide(.cryptoEncrypt, on: name, grants: grants, resolve: resolve)
                return nil
            } catch { return error.code }
        }
        #expect(await code("photos") == nil)
        #expect(await code(photos.keyId) == nil)  // step 2: matched by its other name
        #expect(await code("gone") == .keyNotFound)  // the client's own name for a missing key
        #expect(await code("secret") == .permissionDenied)
        #expect(await code("missing") == .permissionDenied)
        #expect(await code(secret.keyId) == .permissionDenied)
        do {
            _ = try await KeyAccess.decide(.cryptoDecrypt, on: "photos", grants: grants, resolve: resolve)
        } catch {
            #expect(error.message == "permission crypto:decrypt is not granted for key photos")
        }
        let creator = [Grant(keys: [.prefix("backup-"), .keyId(photos.keyId)], allow: [.keysCreate])]
        #expect(throws: Never.self) { try KeyAccess.checkCreate(alias: "backup-nas", grants: creator) }
        #expect(throws: KMSError.self) { try KeyAccess.checkCreate(alias: nil, grants: creator) }
        #expect(throws: Never.self) { try KeyAccess.checkCreate(alias: nil, grants: [Grant.everything]) }
        #expect(throws: KMSError.self) { try KeyAccess.checkClientsManage(grants: creator) }
    }

    @Test func weakPublicKeysAreRefused() throws {
        let valid = try Curve25519.Signing.PrivateKey(rawRepresentation: Self.seed).publicKey.rawRepresentation
        #expect(!ClientAuth.isWeakPublicKey(valid))
        let identity = Data([1] + [UInt8](repeating: 0, count: 31))
        var identityNegative = identity
        identityNegative[31] = 0x80
        let zero = Data(count: 32)
        let p = Data([0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f])
        let pPlusOne = Data([0xee] + [UInt8](repeating: 0xff, count: 30) + [0x7f])
        let pMinusOne = Data([0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f])
        let order8 = Data(hex: "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
        var order8Negative = order8
        order8Negative[31] |= 0x80
        for weak in [identity, identityNegative, zero, p, pPlusOne, pMinusOne, order8, order8Negative, Data(count: 31)]
        {
            #expect(ClientAuth.isWeakPublicKey(weak), "\(Hex.encode(weak))")
        }
        #expect(
            ClientRecord.isValidName("laptop") && !ClientRecord.isValidName("cli_x")
                && !ClientRecord.isValidName("Laptop"))
        #expect(ClientRecord.isClientId(ClientRecord.newClientId()))
        #expect(
            AccessKeyRecord.isAccessKeyId("AKIAABCDEFGHIJ234567")
                && !AccessKeyRecord.isAccessKeyId("AKIAabcdefghij234567"))
    }
}
