import HTTPTypes
import KMSProtocol

/// The header names the server reads or writes beyond HTTP's own.
///
/// Each literal is a valid field name, checked by a test; `?? .accept` only
/// satisfies the type checker and is never taken.
enum HeaderNames {
    static let clientToken = HTTPField.Name(EnvelopePlacement.tokenHeader) ?? .accept
    static let envelope = HTTPField.Name(EnvelopePlacement.envelopeHeader) ?? .accept
    static let requestId = HTTPField.Name("X-Request-Id") ?? .accept
    static let forwardedFor = HTTPField.Name("X-Forwarded-For") ?? .accept
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site") ?? .accept
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options") ?? .accept
    static let frameOptions = HTTPField.Name("X-Frame-Options") ?? .accept
    static let referrerPolicy = HTTPField.Name("Referrer-Policy") ?? .accept
    static let strictTransportSecurity = HTTPField.Name("Strict-Transport-Security") ?? .accept
}
