public import Crypto
import Foundation

/// How a client reaches and trusts the server.
public struct KMSClientConfiguration: Sendable {
    /// `http://host:port` of the server.
    public var baseURL: String
    /// The client token; a random one is drawn when nil.
    public var token: String?
    /// `SHA256:<hex>` of the server key; when set, a mismatching server is refused
    /// before any secret is sent.
    public var fingerprint: String?
    /// When set, the session's token is rotated this often in the background.
    public var rotateInterval: Duration?
    /// This device's enrolled Ed25519 key (identity-v1): it signs every key
    /// exchange. Without one the client sends protocol-v1's body, which a
    /// server with `KMS_CLIENT_AUTH=required` refuses.
    public var clientKey: Curve25519.Signing.PrivateKey?
    /// Told the server key's fingerprint after each key exchange that proved
    /// the server holds that key (its sealed confirmation opened), before the
    /// session carries anything; throwing ends the exchange with that error and
    /// the session on the server. Without a pin this is where a client can
    /// remember the key it met (trust on first use: the `kms` CLI's known
    /// servers, docs/threat-model.md), so a later key exchange is pinned.
    public var serverKeyConfirmed: (@Sendable (_ fingerprint: String) async throws -> Void)?
    /// Called with the fingerprint of the key a server answers `/session/init`
    /// with, after the pin check and before anything is sent to it (the
    /// token, a client key's signature); a throw ends the attempt there, its
    /// error coming out of the call. Without a pin this is where a person can
    /// be asked about a server not met before, as `ssh` asks about a host key.
    /// The key is not proved yet (the exchange's confirmation proves it), so
    /// remember it in `serverKeyConfirmed`, not here.
    ///
    /// Both hooks are `async`, so an app can await a person's answer (a sheet,
    /// a dialog) without holding a thread; the session's calls wait for the
    /// exchange meanwhile, as they wait for any session change. So a hook must
    /// not call this client: that call would wait for the exchange, which waits
    /// for the hook.
    public var serverKeyOffered: (@Sendable (_ fingerprint: String) async throws -> Void)?

    public init(
        baseURL: String, token: String? = nil, fingerprint: String? = nil, rotateInterval: Duration? = nil,
        clientKey: Curve25519.Signing.PrivateKey? = nil,
        serverKeyConfirmed: (@Sendable (_ fingerprint: String) async throws -> Void)? = nil,
        serverKeyOffered: (@Sendable (_ fingerprint: String) async throws -> Void)? = nil
    ) {
        self.baseURL = baseURL
        self.token = token
        self.fingerprint = fingerprint
        self.rotateInterval = rotateInterval
        self.clientKey = clientKey
        self.serverKeyConfirmed = serverKeyConfirmed
        self.serverKeyOffered = serverKeyOffered
    }
}

/// Printed, dumped or logged by mistake, a configuration shows no token, no
/// key and no password in the URL.
extension KMSClientConfiguration: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "KMSClientConfiguration(baseURL: \(redactedBaseURL), token: \(token == nil ? "random" : "redacted"), "
            + "fingerprint: \(fingerprint ?? "none"), clientKey: \(clientKey == nil ? "none" : "redacted"))"
    }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "baseURL": redactedBaseURL, "token": token == nil ? "random" : "redacted",
                "fingerprint": fingerprint ?? "none", "clientKey": clientKey == nil ? "none" : "redacted",
            ])
    }

    /// `baseURL` without its user and password, for messages.
    public var redactedBaseURL: String { Self.redacted(baseURL) }

    /// A server URL without its user and password, for messages: also for one that is not a
    /// configuration yet (a `--url` refused before anything is sent still names what was given).
    public static func redacted(_ baseURL: String) -> String {
        if var parts = URLComponents(string: baseURL), parts.user != nil || parts.password != nil {
            parts.user = nil
            parts.password = nil
            // A password with a raw `@` (and a `/`, `?` or `#` after it) was split at its first `@`: the
            // rest sat in the host or path (a review). Only a result without `@` is taken.
            if let shown = parts.string, !shown.contains("@") { return shown }
        }
        // Not parsed (a password with a space or a bare `%`), or parsed without a user where one was meant
        // (`user:secret@host:1` with no scheme, `http:/user:secret@host`: a review): whatever precedes an
        // `@` may be a password, so it is not shown.
        guard let at = baseURL.lastIndex(of: "@") else { return baseURL }
        let scheme = baseURL.range(of: "://").map { String(baseURL[..<$0.upperBound]) } ?? ""
        return scheme + "(redacted)@" + baseURL[baseURL.index(after: at)...]
    }
}

extension KMSClientConfiguration {
    /// Whether `baseURL` has an `@` after its host: a password's raw `@` makes URLComponents split at
    /// the first one, and the rest of the password would be sent as the request path (a review). The
    /// library and the CLI refuse such a URL, without echoing it.
    public static func hasAtAfterHost(_ baseURL: String) -> Bool {
        guard let parts = URLComponents(string: baseURL) else { return false }
        let afterHost =
            parts.percentEncodedPath + (parts.percentEncodedQuery ?? "") + (parts.percentEncodedFragment ?? "")
        return afterHost.contains("@") || baseURL.filter({ $0 == "@" }).count > 1
    }
}
