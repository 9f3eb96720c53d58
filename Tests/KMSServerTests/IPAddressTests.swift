import NIOCore
import Testing

@testable import KMSServer

/// A request's peer is read from the socket address's bytes (issue 18), never from text: the
/// same address as the text parser gives, for IPv4, IPv6 and IPv4-mapped IPv6.
@Suite struct IPAddressTests {
    @Test(arguments: ["127.0.0.1", "100.64.1.2", "::1", "fd7a:115c:a1e0::1", "::ffff:10.0.0.7"])
    func socketBytesAndTextAgree(_ text: String) throws {
        let socket = try SocketAddress(ipAddress: text, port: 443)
        #expect(IPAddress(socketAddress: socket) == IPAddress(text))
        #expect(IPAddress(socketAddress: socket)?.description == IPAddress(text)?.description)
    }
}
