/// The rotation timer's tally (`KMSClient.tokenRotations`): what `kms e2e --duration` reports, and
/// what an app that rotates in the background can watch (a probe found refused rotations unseen).
public struct TokenRotations: Sendable, Equatable {
    /// Rotations the server made.
    public internal(set) var rotated = 0
    /// Rotations that failed, by cause: the server's stable code (`rate_limited` when the interval is
    /// shorter than `KMS_ROTATE_MAX` per `KMS_ROTATE_WINDOW_MS` allows) or the kind of failure
    /// (`outcome_unknown`, `transport`, ...). Never a message: it may name the server's settings.
    public internal(set) var failures: [String: Int] = [:]

    /// A failure's cause, as a stable word.
    static func cause(of error: any Error) -> String {
        switch error {
        case KMSClientError.server(_, let code, _, _, _, _): return code
        case KMSClientError.fingerprintMismatch: return "fingerprint_mismatch"
        case KMSClientError.protocolViolation: return "protocol_violation"
        case KMSClientError.configuration: return "configuration"
        case KMSClientError.outcomeUnknown: return "outcome_unknown"
        case is CancellationError: return "cancelled"
        // The network, or a trust hook's or custom transport's own error.
        default: return "transport"
        }
    }
}
