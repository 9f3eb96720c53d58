import Foundation

/// The paths of the HTTP API (protocol-v1, api-v1): the one place each path is
/// spelled, read by the server's route declarations and by every client.
///
/// A pattern names its parameters in braces, as OpenAPI does (`/keys/{keyId}`).
public enum WirePath {
    public static let healthz = "/healthz"
    public static let metrics = "/metrics"
    public static let openAPI = "/openapi.json"
    public static let docs = "/docs"

    public static let sessionInit = "/session/init"
    public static let keyExchange = "/session/key-exchange"
    public static let rotateToken = "/session/rotate-token"
    public static let session = "/session"

    public static let keys = "/keys"
    public static let generateKey = "/keys/generate"
    public static let rotateKey = "/keys/rotate"
    public static let key = "/keys/{keyId}"

    // lifecycle-v1
    public static let disableKey = "/keys/{keyId}/disable"
    public static let enableKey = "/keys/{keyId}/enable"
    public static let scheduleKeyDeletion = "/keys/{keyId}/schedule-deletion"
    public static let cancelKeyDeletion = "/keys/{keyId}/cancel-deletion"
    public static let keyRotationSchedule = "/keys/{keyId}/rotation"
    public static let keyDescription = "/keys/{keyId}/description"
    public static let keyTags = "/keys/{keyId}/tags"
    public static let aliases = "/aliases"
    public static let alias = "/aliases/{alias}"

    public static let encrypt = "/crypto/encrypt"
    public static let decrypt = "/crypto/decrypt"
    public static let rewrap = "/crypto/rewrap"
    public static let dataKey = "/crypto/datakey"
    public static let random = "/crypto/random"

    // identity-v1 section 5
    public static let clients = "/clients"
    public static let client = "/clients/{client}"
    public static let clientGrants = "/clients/{client}/grants"
    public static let clientRevoke = "/clients/{client}/revoke"
    public static let clientAccessKeys = "/clients/{client}/access-keys"
    public static let clientAccessKeyRevoke = "/clients/{client}/access-keys/{accessKeyId}/revoke"

    /// `pattern` with each `{name}` replaced by `values[name]`, which the
    /// caller has already percent-escaped for a path segment.
    public static func target(_ pattern: String, _ values: [String: String]) -> String {
        var target = pattern
        for (name, value) in values { target = target.replacingOccurrences(of: "{\(name)}", with: value) }
        return target
    }
}
