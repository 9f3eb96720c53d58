public import Crypto
import Foundation
import KMSProtocol

/// How a client reaches and trusts the server.
public struct KMSClientConfiguration: Sendable {
    /// `http://host:port` of the server.
    public var baseURL: String
    /// The client token; a random one is drawn when nil (leave it nil unless a server needs one: a fixed
    /// token whose process ended without `close()`, an app the system killed, is `token_in_use` at the
    /// next start until the old session expires, up to `KMS_SESSION_TTL_MS`).
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
    /// servers, docs/threat-model.md). The client itself holds to the first key
    /// this hook accepted (without it, the first confirmed), even if that exchange then failed, for the rest of its life (any other is `fingerprintMismatch`,
    /// and the hooks are not asked); across runs it is the app's to hold to it:
    /// pass the remembered key as `fingerprint` next time, or compare with it in
    /// `serverKeyOffered`. A hook that only stores what it is told, with no
    /// comparison on the next run, trusts whichever key answers first then.
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
    /// The server's `KMS_TOKEN_PREFIX` (protocol-v1 section 6), when it sets one: every token this
    /// client draws starts with it, and a fixed `token` must. Such a server refuses any other token
    /// (`401 invalid_token`), so without it a client could reach it only with a fixed token, and lose
    /// the fresh token each new session draws.
    public var tokenPrefix: String?
    /// Accept whatever server key answers, with no pin (`fingerprint`) and no hook to judge it
    /// (`serverKeyOffered`, `serverKeyConfirmed`). The server's key is what authenticates the server:
    /// unchecked, whoever answers at `baseURL` (anyone on the path of plain HTTP, a proxy, a process
    /// that took the port while the server was down) receives the session key, and with it every
    /// plaintext and data key of the session. `KMSClient` refuses a configuration that checks nothing
    /// unless this says it is meant (a server reached over a path trusted otherwise; a test). Prefer
    /// a pin (what `kms server-key` prints on the server) or trust on first use through the hooks.
    public var insecureTrustAnyServer: Bool

    public init(
        baseURL: String, token: String? = nil, fingerprint: String? = nil, rotateInterval: Duration? = nil,
        clientKey: Curve25519.Signing.PrivateKey? = nil,
        serverKeyConfirmed: (@Sendable (_ fingerprint: String) async throws -> Void)? = nil,
        serverKeyOffered: (@Sendable (_ fingerprint: String) async throws -> Void)? = nil,
        tokenPrefix: String? = nil, insecureTrustAnyServer: Bool = false
    ) {
        self.baseURL = baseURL
        self.token = token
        self.fingerprint = fingerprint
        self.rotateInterval = rotateInterval
        self.clientKey = clientKey
        self.serverKeyConfirmed = serverKeyConfirmed
        self.serverKeyOffered = serverKeyOffered
        self.tokenPrefix = tokenPrefix
        self.insecureTrustAnyServer = insecureTrustAnyServer
    }

    /// Why this configuration cannot be used, or nil: a malformed setting (`settingsRefusal`), or no
    /// check of the server's key at all (`insecureTrustAnyServer`). Judged by `KMSClient.init`, before
    /// anything is sent.
    public var refusal: String? {
        if let refusal = settingsRefusal { return refusal.message }
        if fingerprint == nil, serverKeyOffered == nil, serverKeyConfirmed == nil, !insecureTrustAnyServer {
            return
                "nothing checks the server's key: pin it (fingerprint: what `kms server-key` prints on the server), remember it on first use (serverKeyConfirmed, and pass it as fingerprint from then on), or set insecureTrustAnyServer for a server reached over a path trusted otherwise"
        }
        return nil
    }

    /// A setting this configuration cannot use, and why.
    public struct SettingRefusal: Sendable {
        public enum Setting: Sendable { case baseURL, token, tokenPrefix, fingerprint }
        /// Which setting: a caller names where it came from (the CLI: `--url`, `KMS_TOKEN`, …).
        public let setting: Setting
        public let message: String
    }

    /// A base URL with more than scheme, host and port (or a port outside 1 to 65535), a malformed token prefix, a fixed token outside
    /// the grammar or without the prefix, or a malformed pin; nil when none. Apart from `refusal`, so that
    /// a caller can judge these before it sets up how the server's key is checked.
    public var settingsRefusal: SettingRefusal? {
        // Before the path: a password's raw `@` puts its rest in the path (a review).
        if Self.hasAtAfterHost(baseURL) {
            return SettingRefusal(
                setting: .baseURL, message: "the server URL has an @ after its host: a password's @ is written %40")
        }
        // AsyncHTTPClient traps on a port past 65535 (a review crashed the CLI with `--url …:99999`).
        guard HTTPTransport.hasValidPort(baseURL) else {
            return SettingRefusal(setting: .baseURL, message: "the server URL's port is not 1 to 65535")
        }
        if let parts = URLComponents(string: baseURL) {
            // Each request's target is bound into its seal as the server reads it, so a KMS cannot sit
            // under a path (protocol-v1 section 9: proxies pass the target unchanged); every call would
            // fail to authenticate, or to open, with nothing said of why (a review).
            if !["", "/"].contains(parts.percentEncodedPath) {
                return SettingRefusal(
                    setting: .baseURL,
                    message:
                        "the server URL has a path: give scheme, host and port only (the KMS answers at the root of its address)"
                )
            }
            if parts.percentEncodedQuery != nil || parts.percentEncodedFragment != nil {
                return SettingRefusal(
                    setting: .baseURL,
                    message: "the server URL has a query or a fragment: give scheme, host and port only")
            }
        }
        if let prefix = tokenPrefix, !ClientToken.isValidPrefix(prefix) {
            return SettingRefusal(
                setting: .tokenPrefix,
                message:
                    "the token prefix must be at most \(ClientToken.maxPrefixLength) characters of [A-Za-z0-9._~-] (the server's KMS_TOKEN_PREFIX)"
            )
        }
        if let token, let refusal = Self.tokenRefusal(token, prefix: tokenPrefix) {
            return SettingRefusal(setting: .token, message: refusal)
        }
        // A pin with a stray newline would otherwise fail every exchange as a changed server key.
        if let fingerprint, !Fingerprint.isWellFormed(fingerprint) {
            return SettingRefusal(
                setting: .fingerprint,
                message:
                    "the server key pin is not SHA256: and 64 hexadecimal digits (what `kms server-key` prints on the server)"
            )
        }
        return nil
    }

    /// What is wrong with a token the caller chose, saying which rule it breaks (the token itself is never
    /// repeated: it is a bearer secret); nil when it is well formed.
    public static func tokenRefusal(_ token: String, prefix: String?) -> String? {
        guard ClientToken.isWellFormed(token, prefix: nil) else {
            return
                "the token must be \(ClientToken.minLength) to \(ClientToken.maxLength) characters of [A-Za-z0-9._~-] (it has \(token.utf8.count) bytes)"
        }
        if let prefix, !prefix.isEmpty, !ClientToken.isWellFormed(token, prefix: prefix) {
            // The prefix is not repeated: the server keeps it out of its messages too, since an operator may
            // treat it as a secret (a review).
            return "the token does not start with the token prefix (tokenPrefix: the server's KMS_TOKEN_PREFIX)"
        }
        return nil
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
