import Crypto
import Foundation
import KMSProtocol

/// One thing worth recording. Holds names, ids, outcomes and addresses —
/// never a secret, token or plaintext (a session is named by a hash of its id).
public struct AuditEvent: Sendable {
    public var type: String
    public var outcome: String
    public var fields: [(String, String)]

    /// The most UTF-8 bytes one field value keeps: fields may echo what a
    /// client sent, and a client must not be able to grow the fsync'd log by
    /// half a megabyte a request.
    public static let maxFieldBytes = 256

    /// Fields kept whole even when `capped`: a client's grants are what an
    /// admin handed out (a `client.add` or `client.grants` entry cut short
    /// would not say who got `clients:manage`, and identity-v1 section 9's
    /// roll-back check compares them with `GET /clients`). They are validated
    /// and bounded before they get here (`GrantBody.maxGrants` grants of
    /// bounded patterns), and only `clients:manage` may send them. `suppressedKeys` is bounded by
    /// `LeftOutNames` (sixteen names of at most 128 bytes, eight for refusals); `aliases`, written by the scheduler's `key.delete` only, by
    /// a key's alias limit (50 of at most 64 bytes).
    public static let uncappedFields: Set<String> = ["grants", "suppressedKeys", "aliases"]

    /// The first entry of a log begun under an audit key that is older than it (the earlier log was
    /// moved, deleted or emptied, or a PostgreSQL instance is new): `kms audit verify` names it, since
    /// the new chain is otherwise a valid log from seq 1.
    public static let newLog = "audit.new-log"

    /// The `audit.new-log` entry for the log at `file`: what every writer that begins an empty or
    /// missing log under an older audit key writes first (`kms serve`, and the verbs run beside a
    /// stopped server), so that no way of writing a wiped log's first entry leaves it unsaid.
    public static func beginningNewLog(file: URL, reason: String) -> AuditEvent {
        AuditEvent(newLog, [("reason", reason), ("file", file.path)])
    }

    /// A start cut a half-written last line (a crash mid-write): `kms audit verify` names it, since a
    /// log's end cut mid-line while the server was stopped is taken up the same way.
    public static let repaired = "audit.repaired"

    /// `capped: false` only for what the operator configured (the start-up
    /// entry's settings), never for anything a client sent.
    public init(_ type: String, outcome: String = "success", _ fields: [(String, String)] = [], capped: Bool = true) {
        self.type = type
        self.outcome = outcome
        // One member per name (a repeated name keeps its first place and its last
        // value): an entry is strict JSON, which refuses duplicate keys.
        var unique: [(String, String)] = []
        for (name, value) in fields {
            if let index = unique.firstIndex(where: { $0.0 == name }) {
                unique[index].1 = value
            } else {
                unique.append((name, value))
            }
        }
        self.fields =
            capped ? unique.map { ($0.0, Self.uncappedFields.contains($0.0) ? $0.1 : Self.capped($0.1)) } : unique
    }

    /// `value`, or its first bytes (whole characters) and the marker `…[truncated N bytes]`.
    /// The request log caps what a client wrote with it too.
    public static func capped(_ value: String) -> String {
        let count = value.utf8.count
        guard count > maxFieldBytes else { return value }
        var kept = ""
        for character in value {
            guard kept.utf8.count + character.utf8.count <= maxFieldBytes - 32 else { break }
            kept.append(character)
        }
        return kept + "…[truncated \(count - kept.utf8.count) bytes]"
    }

    /// The first 16 hex digits of SHA-256 of a session id: links a session's
    /// events without writing the id itself.
    public static func sessionHash(_ sessionId: String) -> String {
        var sessionId = sessionId
        let digest = sessionId.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return digest.withUnsafeBytes { Hex.encode(UnsafeRawBufferPointer(rebasing: $0.prefix(8))) }
    }

    /// The event object, straight into an audit line.
    func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("type", type)
        json.member("outcome", outcome)
        for (name, value) in fields { json.member(name, value) }
        json.endObject()
    }
}
