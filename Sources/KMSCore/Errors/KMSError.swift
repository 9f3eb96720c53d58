public import KMSProtocol

/// The one error type of the core.
///
/// A `KMSError` is either caused by the client (its `message` is written for
/// the client and safe to show: it never holds a secret) or internal (the
/// client sees a generic message and `detail` goes to the log only). The HTTP
/// status of each code is decided in one place, in the server. Stores report
/// outcomes such as a lost compare-and-set in their own result types, never
/// through a particular `KMSError`.
public struct KMSError: Error, Sendable, Equatable {
    public let code: ErrorCode
    /// Safe to send to the client.
    public let message: String
    /// The request field at fault, when one is. Never empty: protocol-v1's
    /// `"field"` names a field, and a member whose name is `""` names none
    /// (clients may take an empty `field` for a malformed error object).
    public let field: String?
    /// Seconds after which retrying may succeed (`Retry-After`).
    public let retryAfterSeconds: Int?
    /// For the log only; never sent. Still must not hold secrets.
    public let detail: String?
    /// What a few callers decide on beyond the code: a `503 server_busy` may be
    /// storage that failed, a damaged record or an alias that moved, and only
    /// the last may be retried; a `401 unknown_session` found at admission is
    /// answered plain. One value, since the cases exclude each other and `==`
    /// compares codes only (no decision may read the message).
    public enum Cause: Sendable {
        /// The store found the session gone when admitting a request whose
        /// envelope opened with a cached session key: answered in plain JSON,
        /// as the lookup without a cache would have answered it.
        case sessionGoneAtAdmission
        /// `damagedRecord`'s refusal: what a store reports of a file or row that is not a record, as
        /// against a disk that failed (`kms doctor` lists the first, and throws the second).
        case damagedRecord
        /// `KeyRing.aliasChanged`: the alias moved between its read and a conditional write, which
        /// the doors try again.
        case aliasConflict
        /// `MasterKey.unwrap`'s: a wrapped secret did not open (another master key, or damage), which
        /// the offline verbs explain in their own terms.
        case secretDidNotOpen
    }

    public var cause: Cause?

    /// A `permission_denied` on a key that exists: its keyId, for the audit entry only (`permission.denied`'s
    /// `keyId`), never sent. Decided where the denial is, from the name's own resolution: a denied client
    /// learns nothing from it, and the entry names the key whatever name (a long alias shown by its length
    /// only) was asked for.
    public var deniedKeyId: String?

    public var sessionGoneAtAdmission: Bool { cause == .sessionGoneAtAdmission }
    public var isDamagedRecord: Bool { cause == .damagedRecord }
    public var isAliasConflict: Bool { cause == .aliasConflict }
    public var secretDidNotOpen: Bool { cause == .secretDidNotOpen }

    public init(
        _ code: ErrorCode, _ message: String, field: String? = nil, retryAfterSeconds: Int? = nil, detail: String? = nil
    ) {
        self.code = code
        self.message = message
        self.field = field?.isEmpty == true ? nil : field
        self.retryAfterSeconds = retryAfterSeconds
        self.detail = detail
    }

    /// Two errors are equal when their codes are: the code is the contract,
    /// messages are for people, and no decision may depend on their wording.
    public static func == (lhs: KMSError, rhs: KMSError) -> Bool { lhs.code == rhs.code }

    /// Whether the server, not the client, is at fault (logged at error level).
    public var isInternal: Bool { code == .internalError }

    /// An internal failure: the client learns only that it happened.
    public static func `internal`(_ detail: String) -> KMSError {
        KMSError(.internalError, "the server failed to process the request; see its log", detail: detail)
    }

    /// Storage that cannot be written or read now (disk full, I/O error,
    /// database down): `503`, so the client retries; the detail is logged only.
    public static func storageUnavailable(_ detail: String) -> KMSError {
        KMSError(
            .serverBusy, "the server cannot reach its storage right now; try again shortly", retryAfterSeconds: 5,
            detail: detail)
    }

    /// A stored record (a key file or row, an alias file) that does not read as
    /// one: damage, not a bug, so `503`, never the `500` of a bug. The client
    /// learns that much and where the operator looks (`kms doctor` names every
    /// damaged file); which record and why is in the detail, logged only. No
    /// `Retry-After`: waiting does not help, an operator restoring the record does.
    /// `message`: where the operator looks, for a file `kms doctor` does not read.
    public static func damagedRecord(
        _ detail: String,
        message: String =
            "a stored record on the server is damaged and cannot be read; its operator can find it with kms doctor"
    ) -> KMSError {
        var error = KMSError(.serverBusy, message, detail: detail)
        error.cause = .damagedRecord
        return error
    }

    /// Whether the server should log this error at error level (bugs and outages).
    public var needsOperatorAttention: Bool { isInternal || (code == .serverBusy && detail != nil) }

    /// A request field that failed validation.
    public static func invalidRequest(_ failure: RequestFieldError) -> KMSError {
        KMSError(.invalidRequest, failure.message, field: failure.field)
    }

    public static let invalidToken = KMSError(
        .invalidToken, "missing or malformed X-Client-Token: it must match [A-Za-z0-9._~-]{32,256}")
    public static let unknownSession = KMSError(
        .unknownSession, "no live session for this token or session id; start a new session with GET /session/init")
    public static let keyExchangeFailed = KMSError(
        .keyExchangeFailed,
        "the wrapped key could not be unwrapped; wrap 32 random bytes with RSA-OAEP-256 under the key from /session/init"
    )
    public static let authenticationFailed = KMSError(
        .authenticationFailed,
        "the envelope did not authenticate: check the session key, method, target, session id and seq in the AAD")
    public static let tokenInUse = KMSError(.tokenInUse, "this token is already bound to a live session; use another")
}

/// How a `KMSError` reads where it is interpolated: CLI output and start-up
/// failures, for the operator (with `detail`). What a client is sent is built
/// from `code` and `message` only, never from this.
extension KMSError: CustomStringConvertible {
    public var description: String {
        "\(code.rawValue): \(message)" + (detail.map { $0.isEmpty ? "" : " (\($0))" } ?? "")
    }
}
