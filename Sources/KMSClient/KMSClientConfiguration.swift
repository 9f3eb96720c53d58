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

    public init(baseURL: String, token: String? = nil, fingerprint: String? = nil, rotateInterval: Duration? = nil) {
        self.baseURL = baseURL
        self.token = token
        self.fingerprint = fingerprint
        self.rotateInterval = rotateInterval
    }
}
