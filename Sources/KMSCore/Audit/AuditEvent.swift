import Foundation
import KMSProtocol

/// One thing worth recording. Holds names, ids, outcomes and addresses —
/// never a secret, token or plaintext (a session is named by a hash of its id).
public struct AuditEvent: Sendable {
    public var type: String
    public var outcome: String
    public var fields: [(String, String)]

    public init(_ type: String, outcome: String = "success", _ fields: [(String, String)] = []) {
        self.type = type
        self.outcome = outcome
        self.fields = fields
    }

    /// The first 16 hex digits of SHA-256 of a session id: links a session's
    /// events without writing the id itself.
    public static func sessionHash(_ sessionId: String) -> String {
        String(Fingerprint.of(spkiDER: Data(sessionId.utf8)).dropFirst("SHA256:".count).prefix(16))
    }

    var json: JSONValue {
        .object(
            [("type", .string(type)), ("outcome", .string(outcome))] + fields.map { ($0.0, JSONValue.string($0.1)) })
    }
}
