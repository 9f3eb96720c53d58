import Foundation
import KMSProtocol
import Testing

/// The hand-written response writers and the JSON byte writer against `JSONEncoder`
/// (sorted keys, slashes unescaped): the same bytes, or at least the same JSON.
@Suite struct WireJSONTests {
    static func encoderBytes(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return try encoder.encode(value)
    }

    static let awkward = [
        "k-1", "photos/2026", "quote \" and \\ backslash", "line\nbreak\ttab\r\u{08}\u{0C}\u{01}\u{1F}", "é ✓ 🔑", "",
    ]

    @Test(arguments: awkward)
    func responsesMatchJSONEncoderByteForByte(_ text: String) throws {
        let bytes = Data((0..<40).map { UInt8($0 * 7 % 256) })
        let values: [any WireJSONWritable] = [
            CiphertextResponse(keyId: text, version: 3, ciphertext: "kms:v1:" + text),
            DecryptResponse(keyId: text, version: Int(Int32.max), plaintext: bytes),
            DecryptResponse(keyId: text, version: 1, plaintext: Data()),
            DataKeyResponse(keyId: text, version: 2, plaintext: bytes, ciphertext: text),
            RandomResponse(random: text),
            SessionInitResponse(
                sessionId: text, algorithm: "RSA-OAEP-256", publicKey: "-----BEGIN PUBLIC KEY-----\na+/=\n" + text,
                fingerprint: "SHA256:" + text, expiresAt: text),
            KeyExchangeResponse(sessionId: text, expiresAt: text, ttlMs: 900_000, sliding: true, maxLifetimeMs: 0),
            KeyExchangeResponse(sessionId: text, expiresAt: "", ttlMs: -1, sliding: false, maxLifetimeMs: .max),
        ]
        for value in values {
            #expect(
                try WireJSON.encode(value) == Self.encoderBytes(value),
                "\(type(of: value)) with \(text.debugDescription)")
        }
    }

    @Test(arguments: awkward)
    func compactJSONValueParsesBack(_ text: String) throws {
        let value = JSONValue.object([
            ("a", .string(text)), (text, .array([.integer(-5), .bool(true), .null, .number("1.5")])),
            ("o", .object([])),
        ])
        let parsed = try JSONParser.parse(value.compactBytes())
        #expect(parsed == value)
    }
}
