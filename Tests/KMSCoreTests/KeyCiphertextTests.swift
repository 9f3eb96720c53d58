import Foundation
import KMSCore
import KMSProtocol
import Testing

/// The ciphertext text form, parsed byte by byte since issue 18: what it accepts and refuses.
@Suite struct KeyCiphertextTests {
    static let keyId = KeyIdentifier.newKeyId()
    static let sealed = Base64.encode(Data(repeating: 7, count: 44))

    @Test func aWellFormedCiphertextRoundTrips() throws {
        let original = KeyCiphertext(keyId: Self.keyId, version: 2_147_483_647, sealed: Data(repeating: 9, count: 28))
        #expect(KeyCiphertext(parsing: original.text) == original)
        #expect(KeyCiphertext(parsing: "kms:v1:\(Self.keyId):12:\(Self.sealed)")?.version == 12)
    }

    @Test(arguments: [
        "", "kms:v1:", "kms:v1:\(keyId)", "kms:v1:\(keyId):1", "kms:v2:\(keyId):1:\(sealed)",
        "kms:v1:\(keyId):0:\(sealed)", "kms:v1:\(keyId):01:\(sealed)", "kms:v1:\(keyId):2147483648:\(sealed)",
        "kms:v1:\(keyId):99999999999:\(sealed)", "kms:v1:\(keyId)::\(sealed)", "kms:v1:\(keyId):-1:\(sealed)",
        "kms:v1:\(keyId):١:\(sealed)", "kms:v1:\(keyId):1 :\(sealed)", "kms:v1:\(keyId):1:\(sealed):x",
        "kms:v1:\(keyId):1:\(sealed)=", "kms:v1:\(keyId):1:AAAA", "kms:v1:not-a-key:1:\(sealed)",
        "kms:v1::1:\(sealed)", "kms:v1:\(keyId)é:1:\(sealed)", " kms:v1:\(keyId):1:\(sealed)",
    ])
    func malformedTextIsRefused(_ text: String) {
        #expect(KeyCiphertext(parsing: text) == nil, "\(text)")
    }
}
