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
        for text in ["key_*", "*-photos", "back*up", "", String(repeating: "a", count: 65), "-x*", "**"] {
            #expect(KeyPattern(text) == nil, "\(text)")
        }
        #expect(KeyPattern("generate*") == .prefix("generate"))
        // Byte-exact: the Kelvin sign (U+212A) is canonically equivalent to `K`, but not the same bytes.
        #expect(KeyPattern("Kelvin")?.matches(name: "\u{212A}elvin") == false)
        #expect(KeyPattern("Kel*")?.matches(name: "\u{212A}elnope") == false)
        #expect(KeyPattern("Kel*")?.matches(name: "Kelnope") == true)
        // identity-v1 section 4 takes api-v1's alias grammar, which reserves nothing: an alias named
        // `generate` or `rotate` made before lifecycle-v1 reserved them keeps working (rule 9.3), and is granted
        // by name (a review found the grant refused, 400).
        for text in ["generate", "rotate"] {
            #expect(KeyPattern(text) == .alias(text))
            #expect(KeyPattern(text)?.matches(keyId: keyId, alias: text) == true)
        }
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
        for weak in [identity, zero, p, pMinusOne, order8] { #expect(!ClientAuth.isEnrollablePublicKey(weak)) }
        #expect(
            ClientRecord.isValidName("laptop") && !ClientRecord.isValidName("cli_x")
                && !ClientRecord.isValidName("Laptop"))
        #expect(ClientRecord.isClientId(ClientRecord.newClientId()))
        #expect(
            AccessKeyRecord.isAccessKeyId("AKIAABCDEFGHIJ234567")
                && !AccessKeyRecord.isAccessKeyId("AKIAabcdefghij234567"))
        // 20 bytes whose `hasPrefix("AKIA")` held: the Kelvin sign (3 bytes) is K to `String`.
        #expect(!AccessKeyRecord.isAccessKeyId("A\u{212A}IA" + "BCDEFGHIJ23456"))
    }

    /// Labelled by an independent big-integer check (Python: whether
    /// (y² − 1)/(d·y² + 1) is a square mod p, by Euler's criterion) on random
    /// 32-byte strings; y = 2 is the review's example of a key off the curve.
    static let curveVectors: [(hex: String, onCurve: Bool)] = [
        ("2a9c4f02bae021e7813c8b3c024d798e09da55a72627138f11af554faaac5f7f", false),
        ("693971ad884a6d1c628baca491d82260792c593347c97879f1336d5438f21419", true),
        ("dbb746446d5a619acc7547c64374264677c9006532774e2eaf6089b2e3cabb1e", true),
        ("1cdd118b5229898d12b8ede6a07391cd3f3aab675416ce23e0f86ca3732d87e6", true),
        ("de31695010619cd5e26bab6782131d9248e6432734be126b0b7b7029061b3a78", true),
        ("ca50682c6d444fe46482e0360193cd449da2bb5a0a94f99ed744064aa26467a4", true),
        ("b76b13bb6759b5b4db569c8e6d3aa5fc72e001efc22aee08af571b33f92d9ef4", false),
        ("6b8fd507c41a8c842872dc65354c4117179c0f32e399cfdcffda1ff3577aeb55", true),
        ("cc861c5a3fb29d7b5403d5d883086aa2787e694dcd558180d1da8bdab50bc3e7", true),
        ("5e313e2aace39d442ecc8ca2d737e0b349d6b939545f781d9939374571ddad18", false),
        ("46b806bdc8b65d025c50d7f41b5ea18eed7531ce08e77ba652b56e1fe5853e44", true),
        ("3c43877a3fb633ef9043660a4723c2a43681e387d51bbbf5db8411f6481ed507", true),
        ("64792685ba2f33a34a14ac196ff5690a0608b7d970e0ba030eb69182c4a345ef", false),
        ("9d1662e9fe30252a6c71c6108c06b169f2c2c1860da054bb1329a8fdc831aa80", false),
        ("da710bc17440173b8c85759af90af17ac446bf433db6fbc8981c82b4030f5a6f", true),
        ("e5dbafd80a61474265a9f184ed9dd1e43b1547c6fac5655258d5787f4a658186", true),
        ("0a6d348a374989dd211db40616ad935f0f281f4eec4854dab3613f04b2dd4789", false),
        ("9ec9021d51188fafeb6885d1a52909949f779ab7de5ab69894b3d3127cd507fd", true),
        ("02e35050a338e53b65278dc87e1d28092ea411f9d88f39eb3503665ea0a66075", false),
        ("eb0f93d19cd193f4f66de22da2efd90ea81280b381d404802ea18e470d12c958", false),
        ("8236fc399a9c120a474d9234e2498d110eb17b9b9e650892985e004ca6166ebd", false),
        ("160685d3fa05ff53ef7e2d72e79baab3412545ed33a158ab184bbffd700729bf", false),
        ("14aaf76e0e56ddf2a2de1a1c0caf5395ff3f27fae4927f0c5c434bd7362ddfb8", false),
        ("2785a12e1d292ebfb3b74dc8ca9c74fe55dfc05f5b5f1ed3234c6dbf5f19d2b4", false),
        ("0200000000000000000000000000000000000000000000000000000000000000", false),
        ("0300000000000000000000000000000000000000000000000000000000000000", true),
        ("0400000000000000000000000000000000000000000000000000000000000000", true),
    ]

    @Test func keysOffTheCurveAreNotEnrolled() throws {
        for (hex, onCurve) in Self.curveVectors {
            #expect(ClientAuth.isEnrollablePublicKey(Data(hex: hex)) == onCurve, "\(hex)")
        }
        // Every key swift-crypto makes is a point, whatever its x's sign.
        for _ in 0..<200 {
            #expect(ClientAuth.isEnrollablePublicKey(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation))
        }
        #expect(!ClientAuth.isEnrollablePublicKey(Data(count: 33)))
    }
}
