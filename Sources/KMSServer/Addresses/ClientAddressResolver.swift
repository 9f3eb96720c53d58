/// Decides who the client is and whether it may talk to the server.
///
/// The socket peer is the client unless it is a trusted proxy; then
/// `X-Forwarded-For` is read right to left and the first hop that is not a
/// trusted proxy is the client. Hops written by the client itself (left of
/// the first untrusted one) are never believed, nor read: a client's
/// `unknown` or `1.2.3.4:5678` there does not refuse its request. A
/// malformed hop where the walk reaches it (written by a trusted proxy, or
/// the client's own) is refused rather than guessed at.
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
        var origin = peer
        for header in forwardedFor.reversed() {
            for item in header.split(separator: ",", omittingEmptySubsequences: false).reversed() {
                guard let hop = Self.parseHop(item) else {
                    return .refused(peer, reason: "malformed X-Forwarded-For from a trusted proxy")
                }
                guard isTrustedProxy(hop) else { return check(hop) }
                origin = hop
            }
        }
        // Every hop is a trusted proxy: the left-most one is the origin.
        return check(origin)
    }

    /// Trusted-proxy *ranges* not inside the allowlist: a process at any of
    /// their addresses is let in by naming an allowlisted address in
    /// `X-Forwarded-For`, so the allowlist is in effect wider by them (start-up
    /// and `kms doctor` warn). A single address is not named: it is the
    /// operator's proxy, listed on purpose (docs/threat-model.md recommends
    /// exactly that, with loopback off the allowlist), and trusting a proxy is
    /// trusting the addresses it names. Loopback counts as one place: a process
    /// that may connect from 127.0.0.2 may connect from 127.0.0.1 as well, so
    /// loopback proxies widen nothing when any loopback address is allowed.
    public var proxiesBeyondAllowlist: [AddressRange] {
        let loopbackAllowed = allowlist.contains(where: Self.isLoopback)
        return trustedProxies.filter { proxy in
            proxy.prefixLength < 128
                && !(proxy.isCovered(by: allowlist) || (loopbackAllowed && Self.isLoopback(proxy)))
        }
    }

    /// Trusted-proxy *ranges* inside the allowlist, loopback aside (the default, docs/threat-model.md): every
    /// host in them is taken at its word for the address it names in `X-Forwarded-For`, so it can take
    /// another allowlisted host's per-host limits (its pending sessions, its key-exchange bucket, its share of
    /// the body budget) and the address the audit records, and as a trusted proxy it is bounded by the whole
    /// `KMS_MAX_CONNECTIONS` cap alone, not a host's share (a review of 2026-12-06: `KMS_TRUSTED_PROXIES=100.64.0.0/10` beside the same allowlist went
    /// unwarned). Start-up and `kms doctor` warn (`proxyRangesWarning`).
    public var proxyRangesWithinAllowlist: [AddressRange] {
        trustedProxies.filter { proxy in
            proxy.prefixLength < 128 && !Self.isLoopback(proxy) && !proxiesBeyondAllowlist.contains(proxy)
        }
    }

    /// What start-up and `kms doctor` say of `proxyRangesWithinAllowlist`, nil when there are none.
    public var proxyRangesWarning: String? {
        let ranges = proxyRangesWithinAllowlist
        guard !ranges.isEmpty else { return nil }
        return "KMS_TRUSTED_PROXIES holds ranges, not single proxies: "
            + ranges.map(\.description).joined(separator: ",")
            + "; every host in them is believed about the address it names in X-Forwarded-For, so it can spend "
            + "another host's per-host limits (sessions, key exchanges, body budget) and be audited as that host, "
            + "and is bounded by the whole KMS_MAX_CONNECTIONS cap alone, so one of them can hold every connection; "
            + "list only your proxy's own address"
    }

    private static let loopback = ["127.0.0.0/8", "::1"].compactMap { try? AddressRange(parsing: $0) }

    private static func isLoopback(_ range: AddressRange) -> Bool { loopback.contains { range.isWithin($0) } }

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
