import Crypto
import CryptoExtras
import Foundation
import KMSCore
import Testing

@testable import KMSProtocol

/// Wycheproof vectors through the very functions the server uses.
@Suite struct WycheproofTests {
    /// RSA-OAEP-4096 SHA-256/MGF1-SHA-256 through `IdentityKey.unwrap` and
    /// `SessionKeyUnwrapper`: every invalid case must give the one error.
    @Test func rsaOAEP4096() throws {
        let root = try Fixture.json("wycheproof/rsa_oaep_4096_sha256_mgf1sha256_test.json")
        let groups = try #require(root["testGroups"] as? [[String: Any]])
        var checked = (valid: 0, invalid: 0)
        for group in groups {
            let pem = try #require(group["privateKeyPem"] as? String)
            let identity = try IdentityKey.load(pem: pem)
            for test in try #require(group["tests"] as? [[String: Any]]) {
                // The protocol's label is empty: labelled cases do not apply.
                guard (test["label"] as? String) == "" else { continue }
                let ciphertext = Data(hex: test["ct"] as? String ?? "")
                let message = Data(hex: test["msg"] as? String ?? "")
                let id = test["tcId"] as? Int ?? -1
                let wrapped = Base64.encode(ciphertext)
                if test["result"] as? String == "valid" {
                    #expect(identity.unwrap(ciphertext) == message, "tcId \(id)")
                    if message.count == 32 {
                        let key = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity)
                        #expect(key.withUnsafeBytes { Data($0) } == message)
                    } else {
                        expectTheOneUnwrapError {
                            _ = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity)
                        }
                    }
                    checked.valid += 1
                } else {
                    #expect(identity.unwrap(ciphertext) == nil, "tcId \(id)")
                    expectTheOneUnwrapError("tcId \(id)") {
                        _ = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity)
                    }
                    checked.invalid += 1
                }
            }
        }
        #expect(checked.valid >= 8 && checked.invalid >= 15)
    }

    /// Bad base64 and wrong lengths give the same error as a padding failure.
    @Test(arguments: ["", "not base64!", "AAAA", String(repeating: "A", count: 684) + "==", "long"])
    func malformedWrappedKeysLookTheSame(_ argument: String) throws {
        let root = try Fixture.json("wycheproof/rsa_oaep_4096_sha256_mgf1sha256_test.json")
        let group = try #require((root["testGroups"] as? [[String: Any]])?.first)
        let identity = try IdentityKey.load(pem: try #require(group["privateKeyPem"] as? String))
        // "long": a megabyte, refused before it is decoded (made here, since arguments are printed).
        let wrapped = argument == "long" ? String(repeating: "A", count: 1_000_000) : argument
        expectTheOneUnwrapError { _ = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity) }
    }

    /// protocol-v1 fixes RSA-4096: a key of another size is refused when loaded (a review: it was
    /// served and fingerprinted while every exchange failed).
    @Test func identityKeysOfAnotherSizeAreRefused() throws {
        let small = try _RSA.Encryption.PrivateKey(keySize: .bits2048)
        let refused = #expect(throws: KMSError.self) { try IdentityKey.load(pem: small.pemRepresentation) }
        #expect(refused?.detail?.contains("RSA-2048") == true, "\(refused?.detail ?? "")")
        #expect(throws: KMSError.self) { try IdentityKey.load(der: small.derRepresentation) }
    }

    /// AES-256-GCM (96-bit IV, 128-bit tag) through `EnvelopeCipher.open`.
    @Test func aesGCM256() throws {
        let count = try forEachAESGCM256Vector { vector in
            let envelope = SealedEnvelope(seq: 1, iv: vector.iv, ciphertext: vector.ciphertext, tag: vector.tag)
            if let message = vector.message {
                let plaintext = try EnvelopeCipher.open(envelope, key: vector.key, aad: [UInt8](vector.aad))
                #expect(plaintext == message, "tcId \(vector.id)")
            } else {
                #expect(throws: EnvelopeCipher.AuthenticationFailure.self, "tcId \(vector.id)") {
                    try EnvelopeCipher.open(envelope, key: vector.key, aad: [UInt8](vector.aad))
                }
            }
        }
        #expect(count == 66)
    }

    /// The same vectors through `AESGCM256`, which every seal and open of
    /// the project calls (BoringSSL directly on Linux). Each vector opens
    /// twice: as separate buffers, and as slices of one larger buffer (as
    /// the file reader passes them); each valid one also seals to its
    /// ciphertext and tag.
    @Test func aesGCM256Direct() throws {
        #if os(Linux)
            #expect(AESGCM256.direct)
        #endif
        let pad = Data(repeating: 0xA5, count: 7)
        let count = try forEachAESGCM256Vector { vector in
            let plaintext = AESGCM256.open(
                ciphertext: vector.ciphertext, tag: vector.tag, nonce: vector.iv, key: vector.key, aad: vector.aad)
            #expect(plaintext == vector.message, "tcId \(vector.id)")
            let buffer = pad + vector.ciphertext + vector.tag + pad
            let tagStart = pad.count + vector.ciphertext.count
            let sliced = AESGCM256.open(
                ciphertext: buffer[pad.count..<tagStart], tag: buffer[tagStart..<(tagStart + 16)], nonce: vector.iv,
                key: vector.key, aad: vector.aad)
            #expect(sliced == vector.message, "tcId \(vector.id), sliced")
            if let message = vector.message {
                let sealed = try AESGCM256.seal(
                    message, key: vector.key, nonce: try AES.GCM.Nonce(data: vector.iv), aad: vector.aad)
                #expect(sealed.ciphertext == vector.ciphertext && sealed.tag == vector.tag, "tcId \(vector.id), seal")
            }
        }
        #expect(count == 66)
    }

    /// A tag that is not 16 bytes, a key that is not 256 bits and a nonce
    /// that is not 96 bits open nothing, and seal nothing.
    @Test func aesGCM256RefusesOtherSizes() throws {
        let key = SymmetricKey(size: .bits256)
        let nonce = AES.GCM.Nonce()
        let box = try AES.GCM.seal(Data("chunk".utf8), using: key, nonce: nonce)
        let iv = Data(nonce)
        #expect(AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag, nonce: iv, key: key) == Data("chunk".utf8))
        #expect(AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag.prefix(15), nonce: iv, key: key) == nil)
        #expect(AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag + [0], nonce: iv, key: key) == nil)
        #expect(
            AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag, nonce: iv, key: SymmetricKey(size: .bits128))
                == nil)
        #expect(AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag, nonce: iv + [0], key: key) == nil)
        #expect(AESGCM256.open(ciphertext: box.ciphertext, tag: box.tag, nonce: iv.prefix(11), key: key) == nil)
        #expect(throws: AESGCM256.Failure.self) {
            try AESGCM256.sealCombined(Data("chunk".utf8), key: SymmetricKey(size: .bits128))
        }
        #expect(throws: AESGCM256.Failure.self) {
            try AESGCM256.seal(
                Data("chunk".utf8), key: key, nonce: try AES.GCM.Nonce(data: Data(count: 13)), aad: Data())
        }
        #expect(AESGCM256.openCombined(Data(count: 27), key: key) == nil)
    }

    /// One Wycheproof AES-GCM case; `message` is nil when it must not open.
    struct AESGCMVector {
        let id: Int
        let key: SymmetricKey
        let iv, ciphertext, tag, aad: Data
        let message: Data?
    }

    /// Calls `body` for each 256-bit-key, 96-bit-IV, 128-bit-tag case and
    /// returns how many there were.
    func forEachAESGCM256Vector(_ body: (AESGCMVector) throws -> Void) throws -> Int {
        let root = try Fixture.json("wycheproof/aes_gcm_test.json")
        var count = 0
        for group in try #require(root["testGroups"] as? [[String: Any]]) {
            guard group["keySize"] as? Int == 256, group["ivSize"] as? Int == 96, group["tagSize"] as? Int == 128
            else { continue }
            for test in try #require(group["tests"] as? [[String: Any]]) {
                let field = { (name: String) in Data(hex: test[name] as? String ?? "") }
                try body(
                    AESGCMVector(
                        id: test["tcId"] as? Int ?? -1, key: SymmetricKey(data: field("key")), iv: field("iv"),
                        ciphertext: field("ct"), tag: field("tag"), aad: field("aad"),
                        message: test["result"] as? String == "valid" ? field("msg") : nil))
                count += 1
            }
        }
        return count
    }
}

/// Every RSA unwrap failure is one error, to the byte (Manger's attack): the
/// same code, message, field and detail. (`KMSError`'s `==` compares codes only.)
func expectTheOneUnwrapError(
    _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    let error = #expect(throws: KMSError.self, comment, sourceLocation: sourceLocation) { try body() }
    let expected = KMSError.keyExchangeFailed
    #expect(
        error?.code == expected.code && error?.message == expected.message && error?.field == nil
            && error?.detail == nil && error?.retryAfterSeconds == nil, comment, sourceLocation: sourceLocation)
}
