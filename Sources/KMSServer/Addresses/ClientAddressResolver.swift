/// Decides who the client is and whether it may talk to the server.
///
/// The socket peer is the client unless it is a trusted proxy; then
/// `X-Forwarded-For` is read right to left and the first hop that is not a
/// trusted proxy is the client. Hops written by the client itself (left of
/// the first untrusted one) are never believed. A malformed header from a
/// trusted proxy is refused rather than guessed at.
public struct ClientAddressResolver: Sendable {
    public let allowlist: [AddressRange]
    public let trustedProxies: [AddressRange]

    public init(allowlist: [AddressRange], trustedProxies: [AddressRange]) {
        self.allowlist = allowlist
        self.trustedProxies = trustedProxies
    }

    public enum Outcome: Equatable, Sendable {
        case allowed(IPAddress)
        case refused(IPAddress?, reason: String)
    }

    public func resolve(peer: IPAddress?, forwardedFor: [String]) -> Outcome {
        guard let peer else { return .refused(nil, reason: "no peer address") }
        guard isTrustedProxy(peer), !forwardedFor.isEmpty else { return check(peer) }
        var hops: [IPAddress] = []
        for header in forwardedFor {
            for item in header.split(separator: ",", omittingEmptySubsequences: false) {
                guard let hop = Self.parseHop(item) else {
                    return .refused(peer, reason: "malformed X-Forwarded-For from a trusted proxy")
                }
                hops.append(hop)
            }
        }
        for hop in hops.reversed() where !isTrustedProxy(hop) {
            return check(hop)
        }
        // Every hop is a trusted proxy: the left-most one is the origin.
        return check(hops.first ?? peer)
    }

    public func isTrustedProxy(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// Whether `address` is on the allowlist.
    public func allows(_ address: IPAddress) -> Bool {
        allowlist.contains { $0.contains(address) }
    }

    private func check(_ address: IPAddress) -> Outcome {
        allows(address) ? .allowed(address) : .refused(address, reason: "address not on the allowlist")
    }

    /// One hop: an address, optionally `[v6]` in brackets; no ports, names or `unknown`.
    static func parseHop(_ item: Substring) -> IPAddress? {
        var text = item.drop { $0 == " " || $0 == "\t" }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        return IPAddress(text)
    }
}
