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

    @Test func descriptionsAreTheUsualText() throws {
        let expected = [
            "127.0.0.1": "127.0.0.1", "255.255.0.9": "255.255.0.9", "::ffff:10.0.0.7": "10.0.0.7", "::1": "::1",
            "fd7a:115c:a1e0::1": "fd7a:115c:a1e0::1",
        ]
        for (text, description) in expected {
            let socket = try SocketAddress(ipAddress: text, port: 1)
            #expect(IPAddress(socketAddress: socket)?.description == description, "\(text)")
        }
    }
}
