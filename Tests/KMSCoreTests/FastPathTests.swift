import Crypto
import CryptoExtras
import Foundation
import KMSCore
import KMSProtocol
import Testing

/// Issue 18's faster paths against the slower ones they replace: the same
/// values, the same refusals, the same messages.
@Suite struct FastPathTests {
    /// Deterministic bytes (no randomness in what a test compares).
    static func bytes(_ count: Int, seed: Int) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ seed &* 17 &+ ($0 >> 3)) })
    }

    @Test func base64MatchesFoundationForEveryLength() {
        for count in 0...200 {
            let data = Self.bytes(count, seed: count)
            let standard = data.base64EncodedString()
            #expect(Base64.encode(data) == standard, "\(count)")
            #expect(Base64.encode(Array(data)) == standard, "\(count) as an array")
            var appended: [UInt8] = [0x41]
            Base64.append(data, to: &appended)
            #expect(appended == [0x41] + Array(standard.utf8), "\(count) appended")
            var url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            while url.hasSuffix("=") { url.removeLast() }
            #expect(Base64.encodeURL(data) == url, "\(count) URL")
            #expect(Base64.decodeURL(url) == data, "\(count) URL back")
            #expect(Base64.decodeStrict(standard) == data, "\(count) back")
        }
    }

    @Test func base64RefusesEveryNonCanonicalLastQuantum() {
        // Every byte in every position of a two-quantum text: only canonical
        // standard base64 decodes, as Foundation decodes it and re-encodes to the same text.
        let base = Array("QUJDRA==".utf8)
        for position in base.indices {
            for byte in UInt8.min...UInt8.max {
                var text = base
                text[position] = byte
                let decoded = text.withUnsafeBufferPointer { Base64.decodeStrict(bytes: $0) }
                let string = String(decoding: text, as: UTF8.self)
                let reference = Data(base64Encoded: string).flatMap { $0.base64EncodedString() == string ? $0 : nil }
                #expect(decoded == reference, "\(string.debugDescription)")
            }
        }
    }

    static let canonical = SealedEnvelope(
        seq: 42, iv: bytes(12, seed: 1), ciphertext: bytes(1_000, seed: 2), tag: bytes(16, seed: 3))

    /// The scanner's answer and the general parser's, for one input.
    static func agree(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let data = Data(text.utf8)
        let fast = Result { () throws(SealedEnvelope.Malformed) in try SealedEnvelope(json: data) }
        let general = Result { () throws(SealedEnvelope.Malformed) in try SealedEnvelope(generalJSON: data) }
        #expect(fast == general, "\(text.prefix(120).debugDescription)", sourceLocation: sourceLocation)
    }

    @Test func envelopeScannerReadsTheUsualShapes() throws {
        let iv = Base64.encode(Self.canonical.iv)
        let tag = Base64.encode(Self.canonical.tag)
        let ciphertext = Base64.encode(Self.canonical.ciphertext)
        let usual = [
            String(decoding: Self.canonical.json, as: UTF8.self),
            " \n{ \"seq\" :\t42 ,\"iv\":\"\(iv)\", \"ciphertext\":\"\(ciphertext)\",\"tag\":\"\(tag)\" }\r\n",
            #"{"tag":"\#(tag)","ciphertext":"\#(ciphertext)","iv":"\#(iv)","seq":42}"#,
            #"{"seq":0,"iv":"\#(iv)","ciphertext":"","tag":"\#(tag)"}"#,
            #"{"seq":9007199254740991,"iv":"\#(iv)","ciphertext":"","tag":"\#(tag)"}"#,
        ]
        for text in usual {
            let scanned = try #require(Array(text.utf8).withUnsafeBufferPointer { EnvelopeScanner.scan($0) }, "\(text)")
            #expect(scanned == (try SealedEnvelope(generalJSON: Data(text.utf8))))
        }
    }

    @Test func envelopeScannerAgreesWithTheGeneralParser() {
        let json = String(decoding: Self.canonical.json, as: UTF8.self)
        let iv = Base64.encode(Self.canonical.iv)
        let tag = Base64.encode(Self.canonical.tag)
        let ciphertext = Base64.encode(Self.canonical.ciphertext)
        var cases = [
            json, " \n\t\r" + json + " \n",
            #"{"tag":"\#(tag)","ciphertext":"\#(ciphertext)","iv":"\#(iv)","seq":42}"#,
            #"{ "seq" : 7 , "iv" : "\#(iv)" , "ciphertext" : "" , "tag" : "\#(tag)" }"#,
            #"{"seq":0,"iv":"\#(iv)","ciphertext":"","tag":"\#(tag)"}"#,
            #"{"seq":9007199254740991,"iv":"\#(iv)","ciphertext":"","tag":"\#(tag)"}"#,
            "{}", "[]", "", "{", "null", #""seq""#, json + ",", json + "x", json + json,
        ]
        for seq in [
            "9007199254740992", "99999999999999999999", "-1", "-0", "01", "00", "1.0", "1e2", "1E2", "\"1\"", "true",
            "null", "1.", "0x1",
        ] {
            cases.append(json.replacingOccurrences(of: "\"seq\":42", with: "\"seq\":\(seq)"))
        }
        let replacements: [(String, String)] = [
            ("\"seq\"", "\"s\\u0065q\""), ("\"iv\":\"", "\"iv\":\"\\u0041"), ("\"tag\"", "\"extra\":1,\"tag\""),
            ("\"seq\":42,", ""), ("\"seq\":42,", "\"seq\":42,\"seq\":42,"), ("\"iv\":\"\(iv)\"", "\"iv\":\"\(tag)\""),
            ("\"tag\":\"\(tag)\"", "\"tag\":\"\(iv)\""), ("\"ciphertext\":\"\(ciphertext)\"", "\"ciphertext\":null"),
            ("\"ciphertext\":\"", "\"ciphertext\":\"=="), ("\"ciphertext\":\"", "\"ciphertext\":\"A\u{01}"),
            ("\"ciphertext\":\"", "\"ciphertext\":\"é"), ("}", ",}"), ("{", "{,"), (":", "::"), (",", " , "),
            ("\"iv\"", "\"iv\u{00}\""), ("\"ciphertext\":\"\(ciphertext)\"", "\"ciphertext\":{\"a\":1}"),
        ]
        for (from, to) in replacements {
            if let range = json.range(of: from) { cases.append(json.replacingCharacters(in: range, with: to)) }
        }
        for text in cases { Self.agree(text) }
    }

    @Test func envelopeScannerAgreesOnMutatedEnvelopes() {
        // Deterministic mutations: one byte replaced, inserted or removed, everywhere that matters.
        let json = Array(
            SealedEnvelope(
                seq: 5, iv: Self.bytes(12, seed: 4), ciphertext: Self.bytes(5, seed: 5), tag: Self.bytes(16, seed: 6)
            )
            .json)
        let interesting = Array(#"{}[]":,\ 0123456789-.eE+/=ATQa"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xFF]
        for position in json.indices {
            for byte in interesting {
                var replaced = json
                replaced[position] = byte
                var inserted = json
                inserted.insert(byte, at: position)
                for variant in [replaced, inserted] {
                    let fast = Result { () throws(SealedEnvelope.Malformed) in try SealedEnvelope(json: variant) }
                    let general = Result { () throws(SealedEnvelope.Malformed) in
                        try SealedEnvelope(generalJSON: variant)
                    }
                    #expect(fast == general, "\(String(decoding: variant, as: UTF8.self).debugDescription)")
                }
            }
            var removed = json
            removed.remove(at: position)
            let fast = Result { () throws(SealedEnvelope.Malformed) in try SealedEnvelope(json: removed) }
            let general = Result { () throws(SealedEnvelope.Malformed) in try SealedEnvelope(generalJSON: removed) }
            #expect(fast == general, "removed \(position)")
        }
    }

    static let contexts: [[String: String]?] = [
        nil, [:], ["bucket": "photos", "Zeta": "1", "é": "x", "a/b": "\"q\""],
        ["b": "", "a": "\n", "ab": "\\", "B": "✓"],
    ]

    @Test func requestWritersReadBackAndMatchJSONEncoder() throws {
        let plaintext = Self.bytes(33, seed: 9)
        for context in Self.contexts {
            // `aad` and `encryptionContext` together are refused by the server (rule 10.3).
            for aad in [nil, Data(), Self.bytes(7, seed: 1)] as [Data?] where context == nil || aad == nil {
                let encrypt = EncryptRequest(
                    keyId: "k/1 \"x\"", plaintext: plaintext, aad: aad, encryptionContext: context)
                let decrypt = CiphertextRequest(ciphertext: "kms:v1:abc", aad: aad, encryptionContext: context)
                let dataKey = DataKeyRequest(
                    keyId: "k", bytes: aad == nil ? nil : 48, aad: aad, encryptionContext: context)
                // The server reads an encryptionContext into `aad` as well; compare what was sent.
                let encryptBack = try EncryptRequest.parse(WireJSON.encode(encrypt))
                #expect(encryptBack.keyId == encrypt.keyId && encryptBack.plaintext == plaintext)
                #expect(encryptBack.encryptionContext == context && (context != nil || encryptBack.aad == aad))
                let decryptBack = try CiphertextRequest.parse(WireJSON.encode(decrypt))
                #expect(decryptBack.ciphertext == decrypt.ciphertext && decryptBack.encryptionContext == context)
                #expect(context != nil || decryptBack.aad == aad)
                let dataKeyBack = try DataKeyRequest.parse(WireJSON.encode(dataKey))
                #expect(dataKeyBack.keyId == "k" && dataKeyBack.bytes == dataKey.bytes)
                #expect(dataKeyBack.encryptionContext == context && (context != nil || dataKeyBack.aad == aad))
                let values: [any WireJSONWritable] = [encrypt, decrypt, dataKey, RandomRequest(bytes: 32)]
                for value in values {
                    // The same JSON as JSONEncoder's (sorted keys): byte for byte where the
                    // order of a map's keys is not involved, the same value where it is.
                    let ours = try JSONParser.parse(WireJSON.encode(value))
                    let theirs = try JSONParser.parse(WireJSONTests.encoderBytes(value))
                    #expect(Self.sorted(ours) == Self.sorted(theirs), "\(type(of: value))")
                    if context == nil || context?.count ?? 0 < 2 {
                        #expect(try WireJSON.encode(value) == WireJSONTests.encoderBytes(value), "\(type(of: value))")
                    }
                }
            }
        }
    }

    /// Objects with their members in name order, recursively.
    static func sorted(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.map { ($0.0, sorted($0.1)) }.sorted { $0.0 < $1.0 })
        case .array(let items):
            return .array(items.map(sorted))
        default:
            return value
        }
    }

    @Test func responseReadersMatchJSONDecoderAndIgnoreNewMembers() throws {
        let plaintext = Self.bytes(40, seed: 7)
        let ciphertext = CiphertextResponse(keyId: "k-1", version: 3, ciphertext: "kms:v1:x")
        let decrypt = DecryptResponse(keyId: "k-1", version: 2, plaintext: plaintext)
        let dataKey = DataKeyResponse(keyId: "k-1", version: 1, plaintext: plaintext, ciphertext: "kms:v1:y")
        let random = RandomResponse(random: Base64.encode(plaintext))
        #expect(try WireJSON.decode(CiphertextResponse.self, from: WireJSON.encode(ciphertext)) == ciphertext)
        #expect(try WireJSON.decode(DecryptResponse.self, from: WireJSON.encode(decrypt)) == decrypt)
        #expect(try WireJSON.decode(DataKeyResponse.self, from: WireJSON.encode(dataKey)) == dataKey)
        #expect(try WireJSON.decode(RandomResponse.self, from: WireJSON.encode(random)) == random)
        let newer = Data(#"{"ciphertext":"kms:v1:x","keyId":"k-1","version":3,"addedLater":{"a":[1]}}"#.utf8)
        #expect(try WireJSON.decode(CiphertextResponse.self, from: newer) == ciphertext)
        #expect(try JSONDecoder().decode(CiphertextResponse.self, from: newer) == ciphertext)
        for broken in [#"{"keyId":"k-1","version":3}"#, #"{"ciphertext":1,"keyId":"k","version":3}"#, "[", ""] {
            #expect(throws: (any Error).self, "\(broken)") {
                try WireJSON.decode(CiphertextResponse.self, from: Data(broken.utf8))
            }
        }
    }

    @Test func keyExchangeMessagesMatchTheCoders() throws {
        for (clientKey, signature) in [(nil, nil), ("SHA256:ab", "c2ln"), (nil, "c2ln"), ("SHA256:ab", nil)]
            as [(String?, String?)]
        {
            let request = KeyExchangeRequest(
                sessionId: "s-1 \"x\"", wrappedKey: "d3JhcA==", clientKey: clientKey, signature: signature)
            #expect(try WireJSON.encode(request) == WireJSONTests.encoderBytes(request))
            var reader = try JSONObjectReader(bytes: WireJSON.encode(request))
            #expect(try KeyExchangeRequest(reading: &reader) == request)
        }
        let started = SessionInitResponse(
            sessionId: "s-1", algorithm: "RSA-OAEP-256", publicKey: "-----BEGIN PUBLIC KEY-----\nAA==\n",
            fingerprint: "SHA256:00", expiresAt: "2026-12-03T10:00:00.000Z")
        let confirmed = KeyExchangeResponse(
            sessionId: "s-1", expiresAt: "2026-12-03T10:15:00.000Z", ttlMs: 900_000, sliding: true,
            maxLifetimeMs: 86_400_000)
        #expect(try WireJSON.decode(SessionInitResponse.self, from: WireJSONTests.encoderBytes(started)) == started)
        #expect(try WireJSON.decode(KeyExchangeResponse.self, from: WireJSONTests.encoderBytes(confirmed)) == confirmed)
        let newer = Data(
            (#"{"sessionId":"s-1","expiresAt":"2026-12-03T10:15:00.000Z","ttlMs":900000,"sliding":true,"#
                + #""maxLifetimeMs":86400000,"later":[true]}"#).utf8)
        #expect(try WireJSON.decode(KeyExchangeResponse.self, from: newer) == confirmed)
        // What the reader refuses, JSONDecoder decides: a string where a boolean belongs fails both.
        let wrong = Data(
            #"{"sessionId":"s-1","expiresAt":"x","ttlMs":1,"sliding":"yes","maxLifetimeMs":1}"#.utf8)
        #expect(throws: (any Error).self) { try WireJSON.decode(KeyExchangeResponse.self, from: wrong) }
    }

    /// The cached server key answers what parsing the PEM each time did (the
    /// caching itself is a speed matter, not checked here).
    @Test func aServerKeyWrapsForItsPrivateKeyAndFingerprintsItsSPKI() throws {
        let identity = try _RSA.Encryption.PrivateKey(keySize: .bits4096)
        let pem = identity.publicKey.pemRepresentation
        let first = try ClientSeal.serverKey(pem: pem)
        #expect(
            try ClientSeal.fingerprint(publicKeyPEM: pem)
                == Fingerprint.of(spkiDER: identity.publicKey.derRepresentation))
        #expect(first.fingerprint == (try ClientSeal.serverKey(pem: pem)).fingerprint)
        let session = SymmetricKey(size: .bits256)
        let wrapped = try ClientSeal.wrapSessionKey(session, publicKeyPEM: pem)
        let unwrapped = try identity.decrypt(#require(Base64.decodeStrict(wrapped)), padding: .PKCS1_OAEP_SHA256)
        #expect(unwrapped == session.withUnsafeBytes { Data($0) })
        #expect(throws: ClientSeal.Failure.self) { try ClientSeal.serverKey(pem: "not a key") }
        let small = try _RSA.Encryption.PrivateKey(keySize: .bits2048).publicKey.pemRepresentation
        #expect(throws: ClientSeal.Failure.self) { try ClientSeal.wrapSessionKey(session, publicKeyPEM: small) }
    }

    @Test func duplicateKeysAreRefusedOnBothSidesOfTheThreshold() throws {
        for count in [1, 2, 7, 8, 9, 20] {
            let members = (0..<count).map { "\"m\($0)\":\($0)" }
            let unique = "{" + members.joined(separator: ",") + "}"
            #expect(throws: Never.self) { try JSONParser.parse(Data(unique.utf8)) }
            for duplicate in ["m0", "m\(count - 1)"] {
                let text = "{" + (members + ["\"\(duplicate)\":true"]).joined(separator: ",") + "}"
                #expect(throws: JSONParser.Failure.self, "\(count) \(duplicate)") {
                    try JSONParser.parse(Data(text.utf8))
                }
            }
        }
        // Canonically equivalent keys are the same key (as a Set of String would say).
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Data(#"{"\#u{E9}":1,"e\#u{301}":2}"#.utf8)) }
    }

    @Test func finishNamesTheFirstUnreadMember() throws {
        var reader = try JSONObjectReader(bytes: Data(#"{"a":1,"z":2,"b":3,"y":4}"#.utf8))
        #expect(reader.take("b") == .integer(3))
        #expect(reader.contains("y") && !reader.contains("c"))
        #expect(throws: RequestFieldError(field: "a", message: "unknown field `a`")) { try reader.finish() }
        _ = reader.take("a")
        #expect(throws: RequestFieldError(field: "z", message: "unknown field `z`")) { try reader.finish() }
        // A member named "" is refused without an empty `field` (found by fuzzing: clients read "" as no name).
        let empty = try JSONObjectReader(bytes: Data(#"{"":true}"#.utf8))
        #expect(throws: RequestFieldError(field: "", message: "unknown field with an empty name")) {
            try empty.finish()
        }
        #expect(KMSError(.invalidRequest, "x", field: "").field == nil)
        #expect(KMSError.invalidRequest(RequestFieldError(field: "", message: "x")).field == nil)
    }

    @Test func sessionHashIsTheFingerprintsFirstSixteenDigits() {
        for id in ["", "abc", "UWxvcmVtIGlwc3VtIGRvbG9yIHNpdCBhbWV0"] {
            let old = String(Fingerprint.of(spkiDER: Data(id.utf8)).dropFirst("SHA256:".count).prefix(16))
            #expect(AuditEvent.sessionHash(id) == old)
        }
        #expect(AuditEvent.sessionHash("abc") == "ba7816bf8f01cfea")
    }

    @Test func base64EncodesSequencesThatAreNotContiguous() {
        #expect(Base64.encode(repeatElement(0x41, count: 5)) == "QUFBQUE=")
        #expect(Base64.encode(repeatElement(0xFB, count: 7)) == Data(repeating: 0xFB, count: 7).base64EncodedString())
        #expect(Base64.encodeURL(repeatElement(0xFF, count: 4)) == "_____w")
    }

    @Test func hexMatchesFormattedBytesForDigestsArraysAndSequences() {
        let data = Self.bytes(256, seed: 3) + Data(0...255)
        let expected = data.map { String(format: "%02x", $0) }.joined()
        #expect(Hex.encode(data) == expected)
        #expect(Hex.encode([UInt8](data)) == expected)
        #expect(Hex.encode(data.lazy.map { $0 }) == expected)  // not contiguous: the fallback
        let digest = SHA256.hash(data: Data("abc".utf8))
        #expect(Hex.encode(digest) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(Data()) == "" && Hex.decode(expected) == [UInt8](data))
    }

    @Test func tokenChecksReadBytesAndAnswerTheSameForSubstrings() {
        let good = String(repeating: "a", count: 32)
        // (token, prefix, well formed): lengths, characters outside the set, and prefixes.
        let cases: [(String, String?, Bool)] = [
            ("", nil, false), (good, nil, true), (good, "", true), (String(repeating: "Z", count: 256), nil, true),
            (String(repeating: "Z", count: 257), nil, false), (String(repeating: "b", count: 31), nil, false),
            (good + " ", nil, false), (good + "é", nil, false), ("é" + good, nil, false),
            (good + "\u{301}", nil, false),
            ("pfx-" + good, "pfx-", true), ("pfx-" + good, "pfx", true), (good, "pfx-", false),
            ("pfx-\u{301}" + good, "pfx-", false), ("._~-" + good, "._~-", true),
            // A prefix is bytes, not a canonically equivalent text: the Kelvin sign is not "K".
            ("K" + good, "\u{212A}", false), ("K" + good, "K", true),
        ]
        for (token, prefix, expected) in cases {
            #expect(ClientToken.isWellFormed(token, prefix: prefix) == expected, "\(token) \(prefix ?? "nil")")
            #expect(ClientToken.isWellFormed(token.dropFirst(0), prefix: prefix) == expected)
        }
        for token in ["", good, "é" + good] {
            let expected = TokenHash(digest: SHA256.hash(data: Data(token.utf8)))
            #expect(ClientToken.hash(token) == expected && ClientToken.hash(token[...]) == expected)
        }
    }
}
