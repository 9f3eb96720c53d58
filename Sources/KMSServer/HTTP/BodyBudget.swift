import Synchronization

/// The bytes of request bodies being read at once, past each body's first `freeBytes`, across both
/// doors: what keeps memory bounded when many clients send large bodies together. A review held 400
/// bodies of 1 MiB at once (any 40-character token reaches the key exchange's reader): 626 MB, and
/// about 700 MB kept by the allocator afterwards; 950 peaked at 1.57 GB, enough to have a small
/// device's kernel kill the server. A body that would pass the budget is answered `503 server_busy`
/// with `Retry-After` (the rest of the body is drained, unkept); small bodies never count, so the
/// requests of ordinary clients are not refused while large ones fill it.
final class BodyBudget: Sendable {
    /// Each body's first bytes, which never count: every request of our clients but a large
    /// encryption fits in them.
    static let freeBytes = 64 * 1024

    /// The process's budget: 64 bodies of the largest size allowed, and at least 64 MiB.
    static let shared = BodyBudget(capacity: 64 * 1024 * 1024)

    let capacity: Int
    /// How many bodies of the largest size allowed the budget holds at least.
    let bodies: Int
    private let held = Atomic<Int>(0)

    init(capacity: Int, bodies: Int = 64) {
        self.capacity = capacity
        self.bodies = bodies
    }

    /// The capacity for bodies of at most `limit` bytes each.
    func capacity(forBodiesOf limit: Int) -> Int { max(capacity, bodies * limit) }

    /// Takes `count` bytes if the budget has them.
    func take(_ count: Int, limit: Int) -> Bool {
        let capacity = capacity(forBodiesOf: limit)
        var current = held.load(ordering: .relaxed)
        while true {
            guard current + count <= capacity else { return false }
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + count, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    func give(_ count: Int) {
        held.wrappingSubtract(count, ordering: .relaxed)
    }

    /// The bytes held now (tests).
    var inUse: Int { held.load(ordering: .relaxed) }
}
