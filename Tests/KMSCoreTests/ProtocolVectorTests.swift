import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Testing

/// The test vectors published in docs/protocol.md, computed independently
/// (Python, pyca/cryptography) and checked here against the implementation.
@Suite struct ProtocolVectorTests {
    static let key = SymmetricKey(data: Data(0..<32))
    static let sessionId = "kP3x9QvZ2mWc7RtY5bLn8A"
    static let requestAADHex =
        "6b6d732d76312f726571756573740a504f53540a2f63727970746f2f72616e646f6d0a6b5033783951765a326d57633752745935624c6e38410a37"
    static let requestEnvelope =
        #"{"seq":7,"iv":"AAECAwQFBgcICQoL","ciphertext":"PCC0YrGAsTm3cKH2","tag":"YBDq2GEahis1GzAj7LTpfw=="}"#
    static let responseAADHex =
        "6b6d732d76312f726573706f6e73650a6b5033783951765a326d57633752745935624c6e38410a370a323030"
    static let responseEnvelope =
        #"{"seq":7,"iv":"DA0ODxAREhMUFRYX","ciphertext":"49wbuRESkz4VEGqU0M5lpiJSq6yRHnLpys22pKWQj75bylcHnA==","tag":"dzIOx7dmQNiIZetlDCf1IA=="}"#
    static let getHeader =
        "eyJzZXEiOjgsIml2IjoiR0JrYUd4d2RIaDhnSVNJaiIsImNpcGhlcnRleHQiOiIiLCJ0YWciOiJZZUVSenk5R3BzZENMVVBtSG5UdWdRPT0ifQ=="

    @Test func requestVector() throws {
        let aad = EnvelopeAAD.request(method: "POST", target: "/crypto/random", sessionId: Self.sessionId, seq: 7)
        #expect(Data(aad) == Data(hex: Self.requestAADHex))
        let sealed = try EnvelopeCipher.seal(
            Data(#"{"bytes":16}"#.utf8), key: Self.key, aad: aad, seq: 7,
            iv: AES.GCM.Nonce(data: Data(hex: "000102030405060708090a0b")))
        #expect(String(decoding: sealed.json, as: UTF8.self) == Self.requestEnvelope)
        let opened = try EnvelopeCipher.open(
            try SealedEnvelope(json: Data(Self.requestEnvelope.utf8)), key: Self.key, aad: aad)
        #expect(opened == Data(#"{"bytes":16}"#.utf8))
    }

    @Test func responseVector() throws {
        let aad = EnvelopeAAD.response(sessionId: Self.sessionId, seq: 7, status: 200)
        #expect(Data(aad) == Data(hex: Self.responseAADHex))
        let inner = Data(#"{"random":"AAECAwQFBgcICQoLDA0ODw=="}"#.utf8)
        let sealed = try EnvelopeCipher.seal(
            inner, key: Self.key, aad: aad, seq: 7, iv: AES.GCM.Nonce(data: Data(hex: "0c0d0e0f1011121314151617")))
        #expect(String(decoding: sealed.json, as: UTF8.self) == Self.responseEnvelope)
        let opened = try ClientSeal.openResponse(
            Data(Self.responseEnvelope.utf8), sessionId: Self.sessionId, expectedSeq: 7, status: 200, key: Self.key)
        #expect(opened == inner)
        #expect(throws: ClientSeal.Failure.self) {
            try ClientSeal.openResponse(
                Data(Self.responseEnvelope.utf8), sessionId: Self.sessionId, expectedSeq: 7, status: 400, key: Self.key)
        }
    }

    @Test func getHeaderVector() throws {
        let json = try #require(Base64.decodeStrict(Self.getHeader))
        let envelope = try SealedEnvelope(json: json)
        let aad = EnvelopeAAD.request(method: "GET", target: "/keys?limit=2", sessionId: Self.sessionId, seq: 8)
        #expect(try EnvelopeCipher.open(envelope, key: Self.key, aad: aad).isEmpty)
    }

    /// docs/protocol.md shows the same bytes the tests check.
    @Test func docsShowTheseVectors() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../docs/protocol.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for vector in [
            Self.requestAADHex, Self.requestEnvelope, Self.responseAADHex, Self.responseEnvelope, Self.getHeader,
        ] {
            #expect(text.contains(vector), "docs/protocol.md lacks \(vector.prefix(40))")
        }
    }
}
