import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KMSProtocol
import NIOCore

/// A bare protocol client over HummingbirdTesting's client, with every step
/// exposed so tests can break each one on purpose.
final class WireSession {
    let client: any TestClientProtocol
    var token: String
    var sessionId = ""
    var key = SymmetricKey(size: .bits256)
    var seq: UInt64 = 0
    var initResponse: SessionInitResponse?
    /// Signs the key exchange (identity-v1) when set.
    var clientKey: Curve25519.Signing.PrivateKey? = TestServer.adminKey

    init(client: any TestClientProtocol, token: String = WireSession.randomToken()) {
        self.client = client
        self.token = token
    }

    static func randomToken() -> String { "tok_" + UUID().uuidString + UUID().uuidString }

    static let tokenHeader = HTTPField.Name(EnvelopePlacement.tokenHeader) ?? .accept
    static let envelopeHeader = HTTPField.Name(EnvelopePlacement.envelopeHeader) ?? .accept

    /// init + key exchange, checking the seq-0 confirmation.
    @discardableResult
    func establish() async throws -> KeyExchangeResponse {
        let initResponse = try await client.execute(uri: "/session/init", method: .get)
        guard initResponse.status == .ok else { throw WireError.status(initResponse.status.code, initResponse.text) }
        let started = try WireJSON.decode(SessionInitResponse.self, from: Data(buffer: initResponse.body))
        self.initResponse = started
        sessionId = started.sessionId
        let wrapped = try ClientSeal.wrapSessionKey(key, publicKeyPEM: started.publicKey)
        let exchange = try await keyExchange(body: signedBody(wrappedKey: wrapped, serverKeyPEM: started.publicKey))
        guard exchange.status == .ok else { throw WireError.status(exchange.status.code, exchange.text) }
        let plaintext = try ClientSeal.openResponse(
            Data(buffer: exchange.body), sessionId: sessionId, expectedSeq: 0, status: 200, key: key)
        return try WireJSON.decode(KeyExchangeResponse.self, from: plaintext)
    }

    /// The key-exchange body for this session, signed with `clientKey` when there is one.
    func signedBody(wrappedKey: String, serverKeyPEM: String) throws -> String {
        guard let clientKey else { return #"{"sessionId":"\#(sessionId)","wrappedKey":"\#(wrappedKey)"}"# }
        let transcript = ClientAuth.transcript(
            sessionId: sessionId, wrappedKey: Base64.decodeStrict(wrappedKey) ?? Data(), token: token,
            serverFingerprint: try ClientSeal.fingerprint(publicKeyPEM: serverKeyPEM))
        let clientKeyText = ClientAuth.fingerprint(rawPublicKey: clientKey.publicKey.rawRepresentation)
        let signature = Base64.encode(try ClientAuth.sign(transcript, with: clientKey))
        return
            #"{"sessionId":"\#(sessionId)","wrappedKey":"\#(wrappedKey)","clientKey":"\#(clientKeyText)","signature":"\#(signature)"}"#
    }

    func keyExchange(body: String, token: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[Self.tokenHeader] = token ?? self.token
        return try await client.execute(
            uri: "/session/key-exchange", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    /// The outcome of a sealed call: status, and the opened inner body when sealed.
    struct Outcome {
        let status: Int
        let inner: Data?
        let raw: TestResponse

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: inner ?? Data(buffer: raw.body))) as? [String: Any] ?? [:]
        }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
        var isSealed: Bool { inner != nil }
    }

    /// Seals `inner` for `method target` with the next seq and opens the answer.
    func call(_ method: HTTPRequest.Method, _ target: String, _ inner: String? = nil) async throws -> Outcome {
        seq += 1
        let envelope = try ClientSeal.sealRequest(
            Data((inner ?? "").utf8), method: method.rawValue, target: target, sessionId: sessionId, seq: seq, key: key)
        return try await send(method, target, envelope: envelope)
    }

    /// Seals without sending (for replay and tampering tests); advances the seq.
    func seal(_ method: HTTPRequest.Method, _ target: String, _ inner: String = "", seq: UInt64? = nil) throws
        -> SealedEnvelope
    {
        let use = seq ?? (self.seq + 1)
        self.seq = max(self.seq, use)
        return try ClientSeal.sealRequest(
            Data(inner.utf8), method: method.rawValue, target: target, sessionId: sessionId, seq: use, key: key)
    }

    /// Sends a given envelope (possibly tampered with) and opens a sealed answer.
    func send(
        _ method: HTTPRequest.Method, _ target: String, envelope: SealedEnvelope, token: String? = nil
    ) async throws -> Outcome {
        let response = try await sendRaw(method, target, envelopeJSON: envelope.json, token: token)
        guard let sealed = try? SealedEnvelope(json: Data(buffer: response.body)) else {
            return Outcome(status: response.status.code, inner: nil, raw: response)
        }
        _ = sealed
        let inner = try ClientSeal.openResponse(
            Data(buffer: response.body), sessionId: sessionId, expectedSeq: envelope.seq,
            status: response.status.code, key: key)
        return Outcome(status: response.status.code, inner: inner, raw: response)
    }

    func sendRaw(
        _ method: HTTPRequest.Method, _ target: String, envelopeJSON: Data, token: String? = nil
    ) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        headers[Self.tokenHeader] = token ?? self.token
        switch EnvelopePlacement(method: method.rawValue) {
        case .body:
            headers[.contentType] = "application/json"
            return try await client.execute(
                uri: target, method: method, headers: headers, body: ByteBuffer(data: envelopeJSON))
        case .header:
            headers[Self.envelopeHeader] = Base64.encode(envelopeJSON)
            return try await client.execute(uri: target, method: method, headers: headers)
        }
    }
}

enum WireError: Error {
    case status(Int, String)
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:] }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}
