import Foundation
import KMSProtocol
import Testing

/// Values that carry a plaintext, a data key or random bytes show their size, never their bytes,
/// however they are printed (a review: `dump` went through Foundation's mirror of a `Data`,
/// which lists the bytes of one under 64 bytes).
@Suite struct RedactionTests {
    static func printed(_ value: Any) -> [String] {
        var dumped = ""
        dump(value, to: &dumped)
        return ["\(value)", String(describing: value), String(reflecting: value), dumped]
    }

    @Test func secretsAreNotPrinted() {
        let secret = Data("LEAKMARK-plaintext".utf8)
        let bytes = secret.map { " \($0)" }.joined()
        let values: [Any] = [
            EncryptRequest(keyId: "k", plaintext: secret),
            DecryptResponse(keyId: "k", version: 1, plaintext: secret),
            DataKeyResponse(keyId: "k", version: 1, plaintext: secret, ciphertext: "c"),
            RandomResponse(random: "LEAKMARK-random"),
        ]
        for value in values {
            for text in Self.printed(value) {
                #expect(!text.contains("LEAKMARK") && !text.contains(bytes), "\(text)")
                #expect(!text.contains("- 76\n"), "a byte of the plaintext listed: \(text)")
            }
        }
    }
}
