import Foundation
public import KMSProtocol

/// Why a client call failed. A call may also throw `CancellationError` (its task was cancelled), the
/// transport's own errors (the network; `TransportNeverSent` when nothing of the call's own was sent:
/// no connection carried it, or the key exchange it waited for failed, and no earlier send of the call
/// reached the server), what a trust hook throws, and the file API its `FileFormatError` and the file system's
/// errors.
public enum KMSClientError: Error, Sendable, CustomStringConvertible {
    /// The server refused the request; `code` is its stable error code. `retryAfter` is the seconds its
    /// `Retry-After` header asked a `429` or `503` to wait (a hint outside the seal, protocol-v1 section 9:
    /// never more than a day is believed), so a caller can back off as long as the server asked.
    /// `retryAfter` was added on 2026-12-05, which broke patterns that list five values: match with
    /// `case .server(let status, let code, _, _, _, _)`, or better read the `code`, `errorCode` and
    /// `retryAfter` properties, which later members will not change.
    case server(status: Int, code: String, message: String, requestId: String?, field: String?, retryAfter: Int? = nil)
    /// The server's key does not match the pinned fingerprint, or the key this client met first (trust on
    /// first use holds for a client's life); nothing secret was sent.
    case fingerprintMismatch(expected: String, actual: String)
    /// The server's answer broke the protocol (bad seal, wrong seq, wrong status
    /// binding): it may have been tampered with, and it was not trusted.
    case protocolViolation(String)
    /// The configuration cannot work (bad URL, malformed token).
    case configuration(String)
    /// A change may or may not have happened: its answer was lost (no answer, or the request was
    /// resent after its connection closed and the resend was refused as already seen), the server
    /// failed (5xx), or the answer could not be the server's (it did not open, or a plain refusal only
    /// a proxy or an impostor sends). Read the state (`keys show`, `keys list`) before repeating a
    /// create, rotate or delete. A key exchange whose answers were lost three times ends so too (the
    /// server may hold a session this client never learnt of, which expires on its own).
    case outcomeUnknown(String)

    /// The server's error code, if the server refused. A `String`: a newer server may answer a code this
    /// client does not know; `errorCode` gives the ones it does.
    public var code: String? {
        if case .server(_, let code, _, _, _, _) = self { return code }
        return nil
    }

    /// `code` as one of the codes this client knows (protocol-v1 section 9 and this project's own), so a
    /// caller can `switch` on it; nil for a code it does not know, or when the server did not refuse.
    public var errorCode: ErrorCode? { code.flatMap(ErrorCode.init(rawValue:)) }

    /// The seconds the server asked this refusal to wait before a retry, if it said (`Retry-After`).
    public var retryAfter: Int? {
        if case .server(_, _, _, _, _, let retryAfter) = self { return retryAfter }
        return nil
    }

    /// The same refusal with `note` after the server's message, before what `description` adds to it (the
    /// field, the request id): a caller's advice (which file named the key, which CLI verb fixes it) reads as part
    /// of the refusal (a CLI inserted it by searching the text for " [request ", a review). Anything but a
    /// server's refusal is returned as it is.
    public func adding(_ note: String) -> KMSClientError {
        guard case .server(let status, let code, let message, let requestId, let field, let retryAfter) = self else {
            return self
        }
        return .server(
            status: status, code: code, message: message + note, requestId: requestId, field: field,
            retryAfter: retryAfter)
    }

    public var description: String {
        switch self {
        case .server(let status, let code, let message, let requestId, let field, let retryAfter):
            var text = "server refused (\(status) \(code)): \(message)"
            if let field { text += " [field: \(field)]" }
            if let retryAfter { text += " [retry after \(retryAfter) s]" }
            if let requestId { text += " [request \(requestId)]" }
            return text
        case .fingerprintMismatch(let expected, let actual):
            return
                "the server key \(actual) does not match the pinned fingerprint \(expected) (or the key this client met first); refusing to send anything"
        case .protocolViolation(let what):
            return "protocol violation: \(what)"
        case .configuration(let what):
            return "configuration: \(what)"
        case .outcomeUnknown(let what):
            return "outcome unknown: \(what)"
        }
    }
}
