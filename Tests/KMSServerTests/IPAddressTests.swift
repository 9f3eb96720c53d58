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

    /// Whose share of the connection cap a peer takes (`ConnectionGuard.Counter`): an allowlisted
    /// IPv4 address its own, IPv6 by its /64 (one host can hold a whole /64) but Tailscale's by the address, every peer off the
    /// allowlist one share together, a trusted proxy none but the cap.
    @Test func connectionShares() throws {
        let config = try KMSConfiguration(environment: [
            "KMS_WHITELIST": "100.64.0.0/10,fd7a:115c:a1e0::/48,2001:db8:1::/48", "KMS_TRUSTED_PROXIES": "127.0.0.1",
            "KMS_MAX_CONNECTIONS": "100",
        ])
        let counter = ConnectionGuard.Counter(config)
        func share(_ text: String) throws -> ConnectionGuard.Counter.Share {
            counter.share(of: try SocketAddress(ipAddress: text, port: 1))
        }
        #expect(try share("100.64.1.2") != share("100.64.1.3"))
        #expect(try share("2001:db8:1:1::1") == share("2001:db8:1:1::ffff:2"))
        #expect(try share("2001:db8:1:1::1") != share("2001:db8:1:2::1"))
        // Tailscale's range: each node its own share (they all sit in one /64).
        #expect(try share("fd7a:115c:a1e0:ab12:4843:cd96:6262:101") != share("fd7a:115c:a1e0:ab12:4843:cd96:6270:897d"))
        #expect(try share("8.8.8.8") == .stranger && share("2001:db9::1") == .stranger)
        #expect(try share("127.0.0.1") == .unbounded)
        #expect(counter.share(of: nil) == .stranger)
        #expect((counter.perAddress, counter.strangers) == (25, 10))
        let phone = try share("100.64.1.2")
        #expect((0..<25).allSatisfy { _ in counter.take(phone) } && !counter.take(phone))
        for _ in 0..<25 { counter.give(phone) }
        #expect(counter.held(phone) == 0 && counter.take(.unbounded))
    }

    /// The key of the per-address bounds on pending sessions and key exchanges (a review found them
    /// keyed by the whole IPv6 address, so one host walked its /64 past them): an IPv4 address is
    /// its own, an IPv6 address counts by its /64, as connections do.
    /// Tailscale's range is the exception: every node shares one /64 there, and each can send only
    /// from its own address, so a node is its /128; but not in its 4via6 /64, where a subnet router
    /// sends for whole sites.
    @Test func perHostKeys() throws {
        func key(_ text: String) throws -> String { try #require(IPAddress(text)).perHostKey }
        #expect(try key("100.64.1.2") == "100.64.1.2" && key("::ffff:10.0.0.7") == "10.0.0.7")
        #expect(try key("fd7a:115c:a1e1:1::1") == "fd7a:115c:a1e1:1::/64")
        #expect(try key("2001:db8:1:2:ffff:2:3:4") == key("2001:db8:1:2::1"))
        #expect(try key("2001:db8:1:3::1") != key("2001:db8:1:2::1"))
        let (phone, laptop) = ("fd7a:115c:a1e0:ab12:4843:cd96:6262:101", "fd7a:115c:a1e0:ab12:4843:cd96:6270:897d")
        #expect(try key(phone) == phone && key(laptop) == laptop)
        #expect(IPAddress(phone)?.perHost != IPAddress(laptop)?.perHost)
        // 4via6: a subnet router may send from any address of a site it advertises, so its /64 is one host.
        #expect(try key("fd7a:115c:a1e0:b1a:0:7:a00:1") == "fd7a:115c:a1e0:b1a::/64")
        #expect(try key("fd7a:115c:a1e0:b1a:0:7:a00:2") == key("fd7a:115c:a1e0:b1a:0:8:c0a8:1"))
    }

    /// `contains` compares the prefix in place; it must agree with masking the address (the form
    /// it replaced) for every prefix length, inside, at and just outside each range's edges.
    /// An IPv6 range never admits IPv4 peers (review, 2026-12-03: `::/0`, meant as every IPv6 address, admitted
    /// every IPv4 host too, since IPv4 is held as `::ffff:a.b.c.d`).
    @Test func ipv6RangesDoNotAdmitIPv4Peers() throws {
        func address(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }
        for text in ["::/0", "::/80", "::/96", "::ffff:0:0/96", "0:0:0:0:0:ffff::/95"] {
            let range = try? AddressRange(parsing: text)
            #expect(range?.contains(try address("10.0.0.1")) != true, "\(text)")
            #expect(range?.contains(try address("::ffff:10.0.0.1")) != true, "\(text)")
        }
        #expect(try AddressRange(parsing: "::/0").contains(try address("2001:db8::1")))
        #expect(try AddressRange(parsing: "10.0.0.0/8").contains(try address("::ffff:10.0.0.1")))
        #expect(try AddressRange(parsing: "::ffff:10.0.0.0/8").contains(try address("10.9.8.7")))
        #expect(try AddressRange(parsing: "0.0.0.0/0").contains(try address("10.9.8.7")))
        #expect(try !AddressRange(parsing: "0.0.0.0/0").contains(try address("2001:db8::1")))
    }

    @Test func containsAgreesWithMasking() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let v4 = Bool.random(using: &generator)
            let length = Int.random(in: 0...(v4 ? 32 : 128), using: &generator)
            let total = v4 ? 96 + length : length
            let base = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let seed = v4 ? Array(repeating: 0, count: 10) + [0xFF, 0xFF] + base[12...] : base
            let network = AddressRange.masked(IPAddress(bytes: seed), total)
            let range = try AddressRange(parsing: "\(network)/\(length)")
            for _ in 0..<20 {
                var bytes = network.bytes
                // Flip one bit anywhere: inside the prefix it leaves the range, past it it stays.
                let bit = Int.random(in: (v4 ? 96 : 0)..<128, using: &generator)
                bytes[bit / 8] ^= UInt8(0x80) >> UInt8(bit % 8)
                let address = IPAddress(bytes: bytes)
                #expect(range.contains(address) == (AddressRange.masked(address, total) == network))
                #expect(range.contains(address) == (bit >= total), "\(range) \(address)")
            }
            #expect(range.contains(network))
        }
    }

}
