import Crypto
public import Foundation
import KMSProtocol

/// The audit line format, shared by the writer and `kms audit verify`.
///
/// ```
/// {"seq":7,"ts":"2026-11-29T12:00:00.000Z","prev":"<sha256 hex of line 6>","event":{…},"sig":"<b64>"}
/// ```
///
/// `sig` is Ed25519 over the line's bytes without `,"sig":"…"` (that is, the
/// line up to `"event":{…}` followed by `}`); `prev` is the SHA-256 of the
/// whole previous line (without its newline), all zeros for seq 1. The chain
/// continues across rotated files.
public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)
    static let signatureMarker = ",\"sig\":\""

    /// The signed body and the line for an entry.
    static func line(
        seq: UInt64, time: Date, prev: String, event: AuditEvent, key: Curve25519.Signing.PrivateKey
    ) throws -> String {
        let body = JSONValue.object([
            ("seq", .integer(Int64(seq))), ("ts", .string(Timestamp.format(time))), ("prev", .string(prev)),
            ("event", event.json),
        ]).serialized()
        let signature = try key.signature(for: Data(body.utf8))
        return String(body.dropLast()) + signatureMarker + Base64.encode(signature) + "\"}"
    }

    /// SHA-256 hex of a line (without newline): the next entry's `prev`.
    public static func hash(_ line: some StringProtocol) -> String {
        Hex.encode(SHA256.hash(data: Data(line.utf8)))
    }

    /// A parsed line: its seq, prev, signed body and signature.
    public struct Parsed: Sendable {
        public let seq: UInt64
        public let prev: String
        public let body: String
        public let signature: Data
        public let eventType: String
    }

    public static func parse(_ line: String) -> Parsed? {
        guard line.hasSuffix("\"}"), let marker = line.range(of: signatureMarker, options: .backwards) else {
            return nil
        }
        let body = String(line[..<marker.lowerBound]) + "}"
        let signatureText = String(line[marker.upperBound..<line.index(line.endIndex, offsetBy: -2)])
        guard let signature = Base64.decodeStrict(signatureText), signature.count == 64,
            case .object(let members)? = try? JSONParser.parse(Data(body.utf8)),
            members.count == 4, members[0].0 == "seq", case .integer(let seq) = members[0].1, seq >= 1,
            members[1].0 == "ts", members[2].0 == "prev", case .string(let prev) = members[2].1,
            members[3].0 == "event", case .object(let event) = members[3].1
        else { return nil }
        var type = ""
        if case .string(let text)? = event.first(where: { $0.0 == "type" })?.1 { type = text }
        return Parsed(seq: UInt64(seq), prev: prev, body: body, signature: signature, eventType: type)
    }

    public static func verifySignature(_ parsed: Parsed, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        publicKey.isValidSignature(parsed.signature, for: Data(parsed.body.utf8))
    }
}
