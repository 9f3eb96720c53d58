import HTTPTypes
import KMSCore
import KMSProtocol

/// An error of the AWS door (aws-kms-v1 section 2): `{"__type": code,
/// "message"}` with `x-amzn-ErrorType`, `400` unless said. Every refusal of
/// this door is one of these, mapped once from the native `KMSError`.
struct AWSFault: Error, Sendable {
    let code: String
    let message: String
    var status: HTTPResponse.Status = .badRequest
    /// For the operator's log only (a storage outage's cause); never sent.
    var detail: String?
    /// Whether the operator's log must carry it at error level, thinned by its kind apart from the busy
    /// answers (`ResponseLogThinning`): `KMSError.needsOperatorAttention`, bugs and outages, one rule for
    /// both doors.
    var needsOperatorAttention = false
    /// Made from `KeyRing.aliasChanged`: the door tries the alias change again (`KeyRing.againIfAliasChanged`).
    var isAliasConflict = false
    /// Set by `AWSAuthenticator` when the signature was checked against a live access key and failed: the
    /// refusal's audit entry has a budget that ids no access key has cannot spend (`Auditor.authRefused`).
    var accessKeyFound = false

    init(_ code: String, _ message: String, status: HTTPResponse.Status = .badRequest) {
        self.code = code
        self.message = message
        self.status = status
    }

    static func validation(_ message: String) -> AWSFault { AWSFault("ValidationException", message) }
    static func unsupported(_ what: String) -> AWSFault {
        AWSFault("UnsupportedOperationException", "\(what) is not supported by this KMS")
    }
    /// A value the caller sent, as a message may repeat it: whole up to `Echo.maxShownLength` bytes, else by
    /// its length (a review: an unknown operation, a `KeyUsage` or an alias was repeated whole, and boto3
    /// and the CLI put the message in exceptions that applications log; a long value may be a secret pasted
    /// in the wrong place).
    static func shown(_ value: String) -> String { Echo.mayShow(value) ? value : Auditor.notShown(value) }
    /// A key a request names (by id, ARN or alias, well-formed or not) that is not here, or that the caller may
    /// not see: one text, whichever way it was found missing (a walkthrough met two, and a third for an alias).
    static let notFound = AWSFault(
        "NotFoundException", "No key has this KeyId, ARN or alias here; CreateKey makes one.")
    /// A failure of the server's own (a bug): the caller learns only that it happened.
    static func `internal`(_ detail: String) -> AWSFault { from(KMSError.internal(detail)) }
    static let invalidCiphertext = AWSFault(
        "InvalidCiphertextException", "The ciphertext is not one of this KMS, was changed, or its context differs.")

    /// The section 6 mapping of a native error; `keyArn` names the key in messages that need it.
    static func from(_ error: KMSError, keyArn: String? = nil) -> AWSFault {
        var fault = translated(error, keyArn: keyArn)
        fault.isAliasConflict = error.isAliasConflict
        fault.needsOperatorAttention = error.needsOperatorAttention
        return fault
    }

    private static func translated(_ error: KMSError, keyArn: String?) -> AWSFault {
        switch error.code {
        case .keyNotFound where [KeyRing.keyNotFound.message, KeyAccess.notFound.message].contains(error.message):
            // The native messages for a key a request names speak of native routes and words (a review, then a
            // probe with boto3): one AWS-worded message, whether or not the caller may read the key.
            return notFound
        case .keyNotFound:
            // Those a ciphertext caused ("the ciphertext names a key that does not exist here") say so as they are.
            return AWSFault("NotFoundException", error.message)
        case .aliasNotFound:
            return AWSFault("NotFoundException", "No alias has this name here; ListAliases lists them.")
        case .keyVersionNotFound:
            return AWSFault("NotFoundException", error.message)
        case .keyDisabled:
            return AWSFault("DisabledException", "\(keyArn ?? "The key") is disabled.")
        case .keyPendingDeletion:
            // Terraform matches this text.
            return AWSFault("KMSInvalidStateException", "\(keyArn ?? "The key") is pending deletion.")
        case .keyNotPendingDeletion:
            // AWS's own words (a walkthrough: the native "nothing to cancel" read oddly in an aws CLI session).
            return AWSFault("KMSInvalidStateException", "\(keyArn ?? "The key") is not pending deletion.")
        case .keyVersionRetired:
            return AWSFault("KMSInvalidStateException", error.message)
        case .decryptionFailed:
            return invalidCiphertext
        case .aliasInUse:
            return AWSFault("AlreadyExistsException", error.message)
        case .permissionDenied:
            return AWSFault("AccessDeniedException", error.message)
        case .limitReached:
            return AWSFault("LimitExceededException", error.message)
        case .serverBusy, .auditUnavailable:
            var fault = AWSFault("DependencyTimeoutException", error.message, status: .serviceUnavailable)
            fault.detail = error.detail
            return fault
        case .internalError:
            var fault = AWSFault("KMSInternalException", "internal error", status: .internalServerError)
            fault.detail = error.detail ?? error.message
            return fault
        default:
            return validation(error.message)
        }
    }

    var body: String {
        JSONValue.object([("__type", .string(code)), ("message", .string(message))]).serialized()
    }
}
