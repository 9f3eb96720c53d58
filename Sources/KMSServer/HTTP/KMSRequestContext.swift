public import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage plus who is asking.
public struct KMSRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The socket peer.
    public let peer: IPAddress?
    /// The resolved client address (after the trusted-proxy rule); set before any route runs.
    public var clientAddress: IPAddress?
    /// The id logged with the request and returned as `X-Request-Id`.
    public var requestId = ""

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress.flatMap(IPAddress.init(socketAddress:))
    }
}
