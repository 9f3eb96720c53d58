/// Every error code of the wire contract (protocol v1 section 9, api v1).
///
/// Codes are stable: clients branch on them, so a code is never renamed or
/// reused for another meaning. docs/protocol.md lists each with its status.
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    case addressNotAllowed = "address_not_allowed"
    case payloadTooLarge = "payload_too_large"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case badRequest = "bad_request"
    case invalidRequest = "invalid_request"
    case invalidToken = "invalid_token"
    case tokenInUse = "token_in_use"
    case unknownSession = "unknown_session"
    case tooManyPendingSessions = "too_many_pending_sessions"
    case serverBusy = "server_busy"
    case keyExchangeFailed = "key_exchange_failed"
    case invalidEnvelope = "invalid_envelope"
    case authenticationFailed = "authentication_failed"
    case replayDetected = "replay_detected"
    case rateLimited = "rate_limited"
    case keyNotFound = "key_not_found"
    case keyVersionNotFound = "key_version_not_found"
    case keyVersionRetired = "key_version_retired"
    case aliasInUse = "alias_in_use"
    case decryptionFailed = "decryption_failed"
    case auditUnavailable = "audit_unavailable"
    case internalError = "internal_error"
    // identity-v1 section 10.
    case clientNotAuthenticated = "client_not_authenticated"
    case permissionDenied = "permission_denied"
    case clientNotFound = "client_not_found"
    case accessKeyNotFound = "access_key_not_found"
    case clientRevoked = "client_revoked"
    case nameInUse = "name_in_use"
    case publicKeyInUse = "public_key_in_use"
    case limitReached = "limit_reached"
    case lastAdmin = "last_admin"
    // lifecycle-v1 section 5.
    case keyDisabled = "key_disabled"
    case keyPendingDeletion = "key_pending_deletion"
    case keyNotPendingDeletion = "key_not_pending_deletion"
    case aliasNotFound = "alias_not_found"
    // This project's own (protocol-v1 section 9 lets a project add codes it documents).
    case browserRequestRefused = "browser_request_refused"
}
