import KMSProtocol

/// An address or CIDR range from `KMS_WHITELIST` or `KMS_TRUSTED_PROXIES`.
///
/// IPv4 ranges match IPv4-mapped IPv6 peers too (an address written in the
/// mapped form, `::ffff:10.0.0.0/8`, is an IPv4 range). An IPv6 range never
/// matches an IPv4 peer: IPv4 is held in its mapped form, so `::/0`, meant as
/// "every IPv6 address", would otherwise admit every IPv4 host as well. A range with host bits set (`10.0.0.1/8`) is refused
/// rather than silently widened or narrowed.
public struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    /// Prefix length counted over the 16-byte form (IPv4 /n is 96 + n).
    public let prefixLength: Int
    public let description: String
    /// An IPv6 range: never matches an IPv4 peer.
    let excludesIPv4: Bool

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case hostBitsSet(String)

        public var description: String {
            switch self {
            case .malformed(let item): return "\(ConfigReader.shown(item)) is not an IP address or CIDR range"
            case .hostBitsSet(let item):
                return "\(ConfigReader.shown(item)) has host bits set; write the network address"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let item = text.trimmingCharacters(in: .whitespaces)
        let parts = item.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { throw .malformed(item) }
        let maxLength = address.isIPv4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            guard parts[1].isDecimalDigits, let parsed = Int(parts[1]), parsed <= maxLength
            else { throw .malformed(item) }
            length = parsed
        }
        let total = address.isIPv4 ? 96 + length : length
        guard Self.masked(address, total) == address else { throw .hostBitsSet(item) }
        network = address
        prefixLength = total
        description = item
        excludesIPv4 = !address.isIPv4
    }

    private init(network: IPAddress, prefixLength: Int, excludesIPv4: Bool, description: String) {
        self.network = network
        self.prefixLength = prefixLength
        self.excludesIPv4 = excludesIPv4
        self.description = description
    }

    /// Whether every address of this range is in `ranges` taken together: `10.0.0.0/23` is covered by
    /// `10.0.0.0/24` and `10.0.1.0/24`, which `isWithin` one at a time does not see. The range is halved
    /// only while a narrower range of the list lies inside it (otherwise no half can be covered), so
    /// at most the list's length times 128 halvings, each scanning the list (start-up only).
    public func isCovered(by ranges: [AddressRange]) -> Bool {
        if ranges.contains(where: { isWithin($0) }) { return true }
        guard prefixLength < 128, ranges.contains(where: { $0.prefixLength > prefixLength && $0.isWithin(self) })
        else { return false }
        var upper = network.bytes
        upper[prefixLength / 8] |= UInt8(0x80) >> UInt8(prefixLength % 8)
        return [network, IPAddress(bytes: upper)].allSatisfy {
            AddressRange(
                network: $0, prefixLength: prefixLength + 1, excludesIPv4: excludesIPv4, description: description
            ).isCovered(by: ranges)
        }
    }

    /// Whether every address of this range is also in `outer`.
    public func isWithin(_ outer: AddressRange) -> Bool {
        outer.contains(network) && outer.prefixLength <= prefixLength
    }

    /// Compares the first `prefixLength` bits in place: this runs for every
    /// range on every request, and `masked` would allocate a copy each time.
    public func contains(_ address: IPAddress) -> Bool {
        let (bytes, net) = (address.bytes, network.bytes)
        guard bytes.count == 16, net.count == 16, !(excludesIPv4 && address.isIPv4) else { return false }
        for index in 0..<16 {
            let keep = max(0, min(8, prefixLength - index * 8))
            if keep == 0 { return true }
            let mask: UInt8 = keep == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
            if bytes[index] & mask != net[index] { return false }
        }
        return true
    }

    /// `address` with all but its first `length` bits cleared.
    static func masked(_ address: IPAddress, _ length: Int) -> IPAddress {
        var bytes = address.bytes
        for index in 0..<16 {
            let keep = max(0, min(8, length - index * 8))
            bytes[index] &= keep == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return IPAddress(bytes: bytes)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension Set where Element == Character {
    fileprivate static let whitespaces: Set<Character> = [" ", "\t"]
}
