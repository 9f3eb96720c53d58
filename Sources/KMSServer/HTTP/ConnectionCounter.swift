import NIOCore
import Synchronization

extension ConnectionGuard {
    /// Open connections, shared by every connection's guard, in all and per
    /// peer. A trusted proxy's connections have no per-address share (its
    /// clients share its address; their requests are bounded by the address
    /// `X-Forwarded-For` gives). A flood probe filled the whole cap from one
    /// host off the allowlist before the shares existed.
    final class Counter: Sendable {
        let open = Atomic<Int>(0)
        let maximum: Int
        /// Connections one allowlisted address may hold.
        let perAddress: Int
        /// Connections every peer off the allowlist (and not a trusted proxy) may hold together.
        let strangers: Int
        private let resolver: ClientAddressResolver
        private let shares = Mutex<[Share: Int]>([:])

        /// Whose share a connection takes.
        enum Share: Hashable {
            /// An allowlisted address; IPv6 by its /64, which one host can hold whole.
            case address(IPAddress)
            /// Every peer off the allowlist: its requests are all refused.
            case stranger
            /// A trusted proxy: only the cap bounds it (its clients share its address).
            case unbounded
        }

        init(_ config: KMSConfiguration) {
            maximum = config.maxConnections
            perAddress = max(1, config.maxConnections / 4)
            strangers = max(1, config.maxConnections / 10)
            resolver = ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies)
        }

        func share(of peer: SocketAddress?) -> Share {
            // No address: the resolver refuses every request of it, so it is a stranger here too.
            guard let peer, let address = IPAddress(socketAddress: peer) else { return .stranger }
            if resolver.isTrustedProxy(address) { return .unbounded }
            guard resolver.allows(address) else { return .stranger }
            return .address(address.perHost)
        }

        /// Takes a place in `share`; false when it is full.
        func take(_ share: Share) -> Bool {
            let limit: Int
            switch share {
            case .unbounded: return true
            case .address: limit = perAddress
            case .stranger: limit = strangers
            }
            return shares.withLock { held in
                guard held[share, default: 0] < limit else { return false }
                held[share, default: 0] += 1
                return true
            }
        }

        func give(_ share: Share) {
            guard share != .unbounded else { return }
            shares.withLock { held in
                let left = held[share, default: 0] - 1
                held[share] = left > 0 ? left : nil
            }
        }

        /// Connections held in `share` (tests).
        func held(_ share: Share) -> Int { shares.withLock { $0[share] ?? 0 } }
    }
}
