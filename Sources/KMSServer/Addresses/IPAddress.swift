import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 address as 16 bytes; IPv4 is held IPv4-mapped
/// (`::ffff:a.b.c.d`), so `::ffff:127.0.0.1` and `127.0.0.1` are one address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (no zone ids, no brackets).
    public init?(_ text: some StringProtocol) {
        let string = String(text)
        // No NUL either: C reads the text up to it, so `8.8.8.8\0junk` from a `.env` parsed as 8.8.8.8 (a review).
        guard !string.isEmpty, !string.utf8.contains(UInt8(ascii: "%")), !string.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, string, &v4) == 1 {
            let value = withUnsafeBytes(of: &v4.s_addr) { Array($0) }
            bytes = Array(repeating: 0, count: 10) + [0xFF, 0xFF] + value
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, string, &v6) == 1 else { return nil }
        bytes = withUnsafeBytes(of: &v6) { Array($0) }
    }

    /// The address of a socket peer, from its bytes (no text round trip per request).
    init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let address):
            var raw = address.address.sin_addr
            // One allocation: this runs for every request.
            var mapped = [UInt8](repeating: 0, count: 16)
            mapped[10] = 0xFF
            mapped[11] = 0xFF
            withUnsafeBytes(of: &raw) { for index in 0..<4 { mapped[12 + index] = $0[index] } }
            bytes = mapped
        case .v6(let address):
            var raw = address.address.sin6_addr
            bytes = withUnsafeBytes(of: &raw) { Array($0) }
        case .unixDomainSocket:
            return nil
        }
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// Whether this is an IPv4 (or IPv4-mapped IPv6) address.
    public var isIPv4: Bool {
        bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }

    /// 127.0.0.0/8 or `::1`: an address whose traffic never leaves this host.
    public var isLoopback: Bool {
        isIPv4 ? bytes[12] == 127 : bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
    }

    /// What one host can be assumed to hold: the address itself for IPv4, its /64 for IPv6 (a
    /// host is commonly given a whole /64 and may pick any address in it), but the address itself in
    /// Tailscale's range outside its 4via6 /64 (`isTailscale`). Per-address bounds count by it: connections, pending sessions, key
    /// exchanges, body budgets, thinned audit lines.
    public var perHost: IPAddress { isIPv4 || isTailscale ? self : AddressRange.masked(self, 64) }

    /// `perHost` as the key of a per-address bound: `10.0.0.7`, `2001:db8:1:2::/64`,
    /// `fd7a:115c:a1e0:ab12:4843:cd96:6262:101`.
    public var perHostKey: String { isIPv4 || isTailscale ? description : perHost.description + "/64" }

    /// In `fd7a:115c:a1e0::/48`, Tailscale's IPv6 range. The nodes of every tailnet share a few
    /// /64s of it (`fd7a:115c:a1e0:ab12:4843:cd96::/96`, `fd7a:115c:a1e0::/96`), so counting by /64 made one device's flood
    /// lock every other device out (a review: 64 pending sessions from one node, then `429` for
    /// another); and WireGuard's cryptokey routing lets a node send only from its own address, so
    /// there one address is one host. But not in its 4via6 range, `fd7a:115c:a1e0:b1a::/64`: a
    /// subnet router is allowed to send from every address of the sites it advertises there, so that
    /// /64 counts as one host, as any other /64 does.
    var isTailscale: Bool {
        bytes[0] == 0xFD && bytes[1] == 0x7A && bytes[2] == 0x11 && bytes[3] == 0x5C && bytes[4] == 0xA1
            && bytes[5] == 0xE0 && !(bytes[6] == 0x0B && bytes[7] == 0x1A)
    }

    public var description: String {
        if isIPv4 { return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])" }
        var copy = in6_addr()
        withUnsafeMutableBytes(of: &copy) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &copy, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
