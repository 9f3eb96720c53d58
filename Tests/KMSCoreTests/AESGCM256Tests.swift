import Crypto
import Foundation
import KMSProtocol
import Testing

/// `AESGCM256` gives swift-crypto's `AES.GCM` bytes, both ways, for every
/// size the project uses (envelopes, key versions, wrapped secrets, 64 KiB
/// file chunks), and refuses whatever was changed.
@Suite struct AESGCM256Tests {
    static let sizes = [0, 1, 15, 16, 17, 31, 32, 33, 255, 1024, 1500, 4096, 65536]

    @Test(arguments: sizes)
    func sealsAndOpensAsSwiftCryptoDoes(size: Int) throws {
        for aadSize in [0, 1, 13, 100] {
            let key = SymmetricKey(size: .bits256)
            let nonce = AES.GCM.Nonce()
            let plaintext = Data((0..<size).map { _ in UInt8.random(in: 0...255) })
            let aad = [UInt8]((0..<aadSize).map { _ in UInt8.random(in: 0...255) })
            let reference = try AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: aad)

            let sealed = try AESGCM256.seal(plaintext, key: key, nonce: nonce, aad: aad)
            #expect(sealed.ciphertext == reference.ciphertext && sealed.tag == reference.tag)
            let appended = try AESGCM256.sealAppendingTag(plaintext, key: key, nonce: nonce, aad: aad)
            #expect(appended == reference.ciphertext + reference.tag)
            #expect(
                AESGCM256.open(
                    ciphertext: reference.ciphertext, tag: reference.tag, nonce: Data(nonce), key: key, aad: aad)
                    == plaintext)

            // The combined form (fresh nonce) is swift-crypto's `SealedBox.combined`, both ways.
            let combined = try AESGCM256.sealCombined(plaintext, key: key, aad: aad)
            #expect(combined.count == 12 + size + 16)
            let box = try AES.GCM.SealedBox(combined: combined)
            #expect(try AES.GCM.open(box, using: key, authenticating: aad) == plaintext)
            #expect(AESGCM256.openCombined(try #require(reference.combined), key: key, aad: aad) == plaintext)
            // A slice that does not start at index 0 opens the same.
            let padded = Data([1, 2, 3]) + combined
            #expect(AESGCM256.openCombined(padded.dropFirst(3), key: key, aad: aad) == plaintext)
        }
    }

    /// Any changed bit of nonce, ciphertext, tag or aad, or another key, opens nothing.
    @Test func refusesWhatWasChanged() throws {
        let key = SymmetricKey(size: .bits256)
        let aad = Data("context".utf8)
        let combined = try AESGCM256.sealCombined(Data(repeating: 7, count: 40), key: key, aad: aad)
        #expect(AESGCM256.openCombined(combined, key: key, aad: aad) == Data(repeating: 7, count: 40))
        for index in 0..<combined.count {
            var changed = combined
            changed[index] ^= 0x01
            #expect(AESGCM256.openCombined(changed, key: key, aad: aad) == nil, "byte \(index)")
        }
        #expect(AESGCM256.openCombined(combined, key: key, aad: Data("contexu".utf8)) == nil)
        #expect(AESGCM256.openCombined(combined, key: key) == nil)
        #expect(AESGCM256.openCombined(combined, key: SymmetricKey(size: .bits256), aad: aad) == nil)
        #expect(AESGCM256.openCombined(combined.dropLast(), key: key, aad: aad) == nil)
    }

    /// Two seals of the same plaintext use two nonces.
    @Test func combinedSealsTakeFreshNonces() throws {
        let key = SymmetricKey(size: .bits256)
        let first = try AESGCM256.sealCombined(Data("same".utf8), key: key)
        let second = try AESGCM256.sealCombined(Data("same".utf8), key: key)
        #expect(first.prefix(12) != second.prefix(12))
    }

    /// Bytes in more than one region (not contiguous) are copied into one and
    /// give the same result.
    @Test func acceptsBytesInSeveralRegions() throws {
        let key = SymmetricKey(size: .bits256)
        let nonce = AES.GCM.Nonce()
        let plaintext = Data((0..<300).map { UInt8(truncatingIfNeeded: $0) })
        var pieces = DispatchData.empty
        for part in [plaintext.prefix(100), plaintext.dropFirst(100)] {
            part.withUnsafeBytes { pieces.append(DispatchData(bytes: $0)) }
        }
        #expect(pieces.regions.count == 2)
        let reference = try AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: Data("a".utf8))
        let sealed = try AESGCM256.seal(pieces, key: key, nonce: nonce, aad: Data("a".utf8))
        #expect(sealed.ciphertext == reference.ciphertext && sealed.tag == reference.tag)
        var ciphertext = DispatchData.empty
        for part in [reference.ciphertext.prefix(7), reference.ciphertext.dropFirst(7)] {
            part.withUnsafeBytes { ciphertext.append(DispatchData(bytes: $0)) }
        }
        #expect(
            AESGCM256.open(
                ciphertext: ciphertext, tag: reference.tag, nonce: Data(nonce), key: key, aad: Data("a".utf8))
                == plaintext)
    }
}
