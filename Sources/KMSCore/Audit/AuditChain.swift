import Crypto
public import Foundation
import KMSProtocol

/// The audit line formats, shared by the writer and `kms audit verify`.
///
/// Format 2 (written since issue 18) hash-chains every entry and signs a
/// *checkpoint* line once per group commit that is fsynced, and at least once a
/// second while entries arrive, instead of signing every entry:
///
/// ```
/// {"v":2,"seq":7,"ts":"2026-11-29T12:00:00.000Z","prev":"<sha256 hex of the previous line>","event":{…}}
/// {"v":2,"checkpoint":7,"ts":"2026-11-29T12:00:00.004Z","prev":"<sha256 hex of entry 7's line>","sig":"<b64>"}
/// ```
///
/// Format 1 (every entry signed, no `v`) is still read, so an older log — or
/// one that an upgraded server continued — verifies as one chain:
///
/// ```
/// {"seq":7,"ts":"2026-11-29T12:00:00.000Z","prev":"<sha256 hex of the previous line>","event":{…},"sig":"<b64>"}
/// ```
///
/// In both, `prev` is the SHA-256 of the whole previous line (without its
/// newline, whatever its kind), all zeros for the first; `sig` is Ed25519 over
/// the line's bytes without `,"sig":"…"`. A checkpoint's `prev` is the chain
/// head, so its signature covers every line before it. The chain continues
/// across rotated files.
public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)
    static let signatureMarker = ",\"sig\":\""

    /// A format-2 entry line: hash-chained, signed by the next checkpoint.
    /// Written as bytes directly: one per audited request.
    static func entryLine(seq: UInt64, time: Date, prev: String, event: AuditEvent) -> [UInt8] {
        var json = JSONBytes(capacity: 512)
        json.beginObject()
        json.member("v", integer: 2)
        json.key("seq")
        json.integer(Int64(seq))
        json.member("ts", Timestamp.format(time))
        json.member("prev", prev)
        json.key("event")
        event.write(to: &json)
        json.endObject()
        // What a client sent (a failed exchange's clientKey, an alias) may hold DEL, C1 controls, bidi
        // overrides or line separators, which JSON leaves raw: written as escapes, the same JSON to every
        // reader, so that `less` or `cat` on the log shows them instead of acting on them or reordering
        // the line (a probe's L5). Only a line with a byte past ASCII pays for the look.
        return TerminalText.jsonEscapedIfNeeded(json.bytes).map { Array($0.utf8) } ?? json.bytes
    }

    /// A checkpoint line: signs the chain head (`prev`, the hash of entry `seq`'s line).
    static func checkpointLine(
        covering seq: UInt64, time: Date, prev: String, key: Curve25519.Signing.PrivateKey
    ) throws -> String {
        let body = JSONValue.object([
            ("v", .integer(2)), ("checkpoint", .integer(Int64(seq))), ("ts", .string(Timestamp.format(time))),
            ("prev", .string(prev)),
        ]).serialized()
        let signature = try key.signature(for: Data(body.utf8))
        return String(body.dropLast()) + signatureMarker + Base64.encode(signature) + "\"}"
    }

    /// SHA-256 hex of a line (without newline): the next line's `prev`.
    public static func hash(_ line: some StringProtocol) -> String {
        Hex.encode(SHA256.hash(data: Data(line.utf8)))
    }

    /// The same, for a line as written.
    static func hash(_ line: [UInt8]) -> String {
        Hex.encode(SHA256.hash(data: line))
    }

    /// What a line is.
    public enum Kind: Sendable, Equatable {
        /// Format 1: an entry carrying its own signature.
        case signedEntry
        /// Format 2: an entry covered by a later checkpoint.
        case entry
        /// Format 2: a signature over the chain up to entry `seq`.
        case checkpoint
    }

    /// A parsed line. For a checkpoint, `seq` is the last entry it covers.
    public struct Parsed: Sendable {
        public let kind: Kind
        public let seq: UInt64
        public let prev: String
        /// When it was written (RFC 3339), as the line says.
        public let time: String
        /// The signed bytes (the line without `,"sig":"…"`); nil for a format-2 entry.
        public let body: String?
        public let signature: Data?
        public let eventType: String
        /// For an `audit.unsigned-tail` entry: the entries a crash left unsigned,
        /// which the start that wrote it signed over.
        public var adopted: ClosedRange<UInt64>? = nil
    }

    public static func parse(_ line: String) -> Parsed? {
        guard var parsed = parseLine(line) else { return nil }
        if parsed.eventType == "audit.unsigned-tail",
            case .object(let members)? = try? JSONParser.parse(Data(line.utf8)),
            case .object(let event)? = members.first(where: { $0.0 == "event" })?.1,
            case .string(let from)? = event.first(where: { $0.0 == "fromSeq" })?.1,
            case .string(let to)? = event.first(where: { $0.0 == "toSeq" })?.1,
            let first = UInt64(from), let last = UInt64(to), first <= last
        {
            parsed.adopted = first...last
        }
        return parsed
    }

    private static func parseLine(_ line: String) -> Parsed? {
        guard case .object(let members)? = try? JSONParser.parse(Data(line.utf8)) else { return nil }
        let names = members.map(\.0)
        switch names {
        case ["seq", "ts", "prev", "event", "sig"]:
            guard case .object(let event) = members[3].1 else { return nil }
            return signed(
                line, kind: .signedEntry, seq: members[0].1, time: members[1].1, prev: members[2].1, event: event)
        case ["v", "seq", "ts", "prev", "event"]:
            guard case .integer(2) = members[0].1, case .integer(let seq) = members[1].1, seq >= 1,
                case .string(let time) = members[2].1, case .string(let prev) = members[3].1,
                case .object(let event) = members[4].1
            else { return nil }
            return Parsed(
                kind: .entry, seq: UInt64(seq), prev: prev, time: time, body: nil, signature: nil,
                eventType: type(of: event))
        case ["v", "checkpoint", "ts", "prev", "sig"]:
            guard case .integer(2) = members[0].1 else { return nil }
            return signed(line, kind: .checkpoint, seq: members[1].1, time: members[2].1, prev: members[3].1, event: [])
        default:
            return nil
        }
    }

    private static func signed(
        _ line: String, kind: Kind, seq: JSONValue, time: JSONValue, prev: JSONValue, event: [(String, JSONValue)]
    ) -> Parsed? {
        // `sig` is the last member and its value is base64, so the last marker is the top-level one.
        guard case .integer(let seq) = seq, seq >= 1, case .string(let time) = time, case .string(let prev) = prev,
            let marker = line.range(of: signatureMarker, options: .backwards)
        else { return nil }
        let signatureText = String(line[marker.upperBound..<line.index(line.endIndex, offsetBy: -2)])
        guard let signature = Base64.decodeStrict(signatureText), signature.count == 64 else { return nil }
        return Parsed(
            kind: kind, seq: UInt64(seq), prev: prev, time: time, body: String(line[..<marker.lowerBound]) + "}",
            signature: signature, eventType: type(of: event))
    }

    private static func type(of event: [(String, JSONValue)]) -> String {
        if case .string(let text)? = event.first(where: { $0.0 == "type" })?.1 { return text }
        return ""
    }

    public static func verifySignature(_ parsed: Parsed, publicKey: Curve25519.Signing.PublicKey) -> Bool {
        guard let body = parsed.body, let signature = parsed.signature else { return false }
        return publicKey.isValidSignature(signature, for: Data(body.utf8))
    }
}
