import HTTPTypes

/// The headers every response carries, whatever produced it.
struct SecurityHeaders: Sendable {
    /// Whether to send HSTS (`KMS_ENV=production`).
    let hsts: Bool

    /// Nothing may load from anywhere: the only page (`/docs`) is self-contained
    /// and its one stylesheet is allowed by hash in its own response.
    static let contentSecurityPolicy =
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    func apply(to headers: inout HTTPFields) {
        headers[HeaderNames.contentTypeOptions] = "nosniff"
        headers[HeaderNames.frameOptions] = "DENY"
        headers[HeaderNames.referrerPolicy] = "no-referrer"
        headers[.cacheControl] = "no-store"
        if headers[.contentSecurityPolicy] == nil { headers[.contentSecurityPolicy] = Self.contentSecurityPolicy }
        if hsts { headers[HeaderNames.strictTransportSecurity] = "max-age=31536000; includeSubDomains" }
    }
}
