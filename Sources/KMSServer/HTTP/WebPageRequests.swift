import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol

/// Requests a web page made are refused on the native door, the API documents excepted.
///
/// A page the user opens can make their browser send requests to this server, and the allowlist
/// lets them in: the browser runs on an allowlisted host (the laptop, or loopback beside the
/// server). By DNS rebinding the page can also read the answers, as if it were this server's own
/// origin. With `KMS_CLIENT_AUTH=off` that is enough to complete a key exchange with WebCrypto's
/// RSA-OAEP and AES-GCM and use every key; with client authentication the page holds no enrolled
/// key, but it could still make pending sessions. No client of this API is a browser, and
/// browsers mark what a page sends: `Origin` on every `POST` (same origin too) and on cross-origin
/// reads, and `Sec-Fetch-Site` on every request to an `https://` or loopback origin, `none` only
/// when the user typed the address or opened a bookmark. A rebound page's `GET` to an `http://`
/// name carries neither, so `/healthz`, `/metrics` and `/session/init` stay readable to it; none
/// gives it a session (the key exchange is a `POST`). Neither header is sent by
/// AsyncHTTPClient, `requests`, curl, Go or the AWS SDKs. A request carrying `Origin`, or
/// `Sec-Fetch-Site` other than `none`, is refused before routing, whatever its `Host`: checking
/// `Host` instead would refuse the names a user reaches the server by (a tailnet name, a proxy's).
/// `GET` of `/docs` and `/openapi.json` is public text and stays readable from anywhere.
enum WebPageRequests {
    /// A read of the API documents, which web pages may make (the OpenAPI document lists no refusal for it).
    static func isPublicDocument(method: HTTPRequest.Method, path: String) -> Bool {
        method == .get && (path.bytesEqual(WirePath.docs) || path.bytesEqual(WirePath.openAPI))
    }

    static func refusal(_ request: Request) -> KMSError? {
        let fields = request.headers
        // One lookup each, no array per request: repeated `Sec-Fetch-Site` lines come joined (`none, x`),
        // which is not `none` either.
        let fromPage =
            fields[.origin] != nil || fields[HeaderNames.secFetchSite].map { !$0.bytesEqual("none") } ?? false
        guard fromPage, !isPublicDocument(method: request.method, path: request.uri.path) else { return nil }
        return KMSError(
            .browserRequestRefused,
            "requests made by a web page (Origin or Sec-Fetch-Site) are refused: use the kms CLI or a client library; /docs is readable in a browser"
        )
    }
}
