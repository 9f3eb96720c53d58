import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import Logging

/// The one mapping of error codes to HTTP statuses (protocol v1 section 9).
extension ErrorCode {
    var httpStatus: HTTPResponse.Status {
        switch self {
        case .addressNotAllowed, .permissionDenied, .browserRequestRefused: return .forbidden
        case .payloadTooLarge: return .contentTooLarge
        case .notFound, .keyNotFound, .keyVersionNotFound, .clientNotFound, .accessKeyNotFound,
            .aliasNotFound:
            return .notFound
        case .methodNotAllowed: return .methodNotAllowed
        case .badRequest, .invalidRequest, .keyExchangeFailed, .invalidEnvelope, .decryptionFailed: return .badRequest
        case .invalidToken, .unknownSession, .authenticationFailed, .replayDetected, .clientNotAuthenticated:
            return .unauthorized
        case .tokenInUse, .aliasInUse, .keyVersionRetired, .clientRevoked, .nameInUse, .publicKeyInUse, .limitReached,
            .lastAdmin, .keyDisabled, .keyPendingDeletion, .keyNotPendingDeletion:
            return .conflict
        case .tooManyPendingSessions, .rateLimited: return .tooManyRequests
        case .serverBusy, .auditUnavailable: return .serviceUnavailable
        case .internalError: return .internalServerError
        }
    }
}

extension KMSError {
    /// The section 8 error object for this error.
    func body(requestId: String) -> Data {
        let body = ErrorBody(error: .init(code: code.rawValue, message: message, requestId: requestId, field: field))
        return (try? WireJSON.encode(body)) ?? Data("{\"error\":{\"code\":\"internal_error\"}}".utf8)
    }

    /// Headers that go with the error outside any seal.
    var headers: HTTPFields {
        var fields: HTTPFields = [.contentType: "application/json"]
        if let retryAfterSeconds { fields[.retryAfter] = String(retryAfterSeconds) }
        if code == .methodNotAllowed, let detail { fields[.allow] = detail }
        return fields
    }

    /// The one place an error becomes a response: sealed for `request` when the error came after
    /// authentication (protocol v1 section 5), plain JSON otherwise. Should sealing itself fail, the
    /// answer is a plain `500` and `answered` is that internal error, so the caller logs what was sent
    /// (`EdgeResponder` logs `request failed` with its request line, under one sampling decision).
    func response(requestId: String, sealedFor request: AuthenticatedRequest? = nil) -> (
        response: Response, answered: KMSError
    ) {
        var body = body(requestId: requestId)
        if let request {
            do {
                body = try request.seal(body, status: Int(code.httpStatus.code))
            } catch {
                return error.response(requestId: requestId)
            }
        }
        let response = Response(
            status: code.httpStatus, headers: headers, body: .init(byteBuffer: ByteBuffer(data: body)))
        return (response, self)
    }

    /// Any error reaching the edge of the server, as a `KMSError` and the
    /// request to seal its answer for: anything that is neither a `KMSError`
    /// nor a `SealedFailure` is a bug and becomes `internal_error`.
    static func from(_ error: any Error) -> (KMSError, AuthenticatedRequest?) {
        if let failure = error as? SealedFailure { return (failure.error, failure.request) }
        if let error = error as? KMSError { return (error, nil) }
        return (.internal("unexpected \(type(of: error))"), nil)
    }
}
