import Synchronization

/// The bytes of request bodies being read at once, past each body's first `freeBytes`, across both
/// doors: what keeps memory bounded when many clients send large bodies together. A review held 400
/// bodies of 1 MiB at once (any 40-character token reaches the key exchange's reader): 626 MB, and
/// about 700 MB kept by the allocator afterwards; 950 peaked at 1.57 GB, enough to have a small
/// device's kernel kill the server. A body that would pass the budget is answered `503 server_busy`
/// with `Retry-After` (the rest of the body is drained, unkept); small bodies never count, so the
/// requests of ordinary clients are not refused while large ones fill it. One host (an IPv6 /64
/// counting as one, as connection shares do) may hold a quarter of it: bodies are read before their
/// token is checked, and a review of this budget found that one host could otherwise fill it for
/// everyone.
final class BodyBudget: Sendable {
    /// Each body's first bytes, which never count: every request of our clients but a large
    /// encryption fits in them.
    static let freeBytes = 64 * 1024

    /// The process's budget: 64 bodies of the largest size allowed, and at least 64 MiB.
    static let shared = BodyBudget(capacity: 64 * 1024 * 1024)

    let capacity: Int
    /// How many bodies of the largest size allowed the budget holds at least.
    let bodies: Int

    private struct State {
        var total = 0
        var byHost: [String: Int] = [:]
    }

    private let state = Mutex(State())

    init(capacity: Int, bodies: Int = 64) {
        self.capacity = capacity
        self.bodies = bodies
    }

    /// The capacity for bodies of at most `limit` bytes each.
    func capacity(forBodiesOf limit: Int) -> Int { max(capacity, bodies * limit) }

    /// Takes `count` bytes for `host` if the budget, and the host's quarter of it, have them.
    func take(_ count: Int, limit: Int, host: String) -> Bool {
        let capacity = capacity(forBodiesOf: limit)
        return state.withLock { state in
            let held = state.byHost[host, default: 0]
            guard state.total + count <= capacity, held + count <= capacity / 4 else { return false }
            state.total += count
            state.byHost[host] = held + count
            return true
        }
    }

    func give(_ count: Int, host: String) {
        state.withLock { state in
            state.total -= count
            let left = state.byHost[host, default: 0] - count
            state.byHost[host] = left > 0 ? left : nil
        }
    }

    /// The bytes held now, in all and by `host` (tests).
    func inUse(by host: String? = nil) -> Int {
        state.withLock { state in host.map { state.byHost[$0, default: 0] } ?? state.total }
    }
}
