import Synchronization

/// Loopback ports for servers the tests start as processes, each handed out
/// once per test run. Random picks collided: a second `kms serve` on a taken
/// port fails to bind, but the first one answers its health check, and the
/// test then talks to the wrong server (a CI run saw an admin key "not
/// enrolled here" that way).
enum TestPorts {
    /// Below the kernel's ephemeral range (32768-60999): a port a client socket
    /// holds there makes bind fail. Starts at a random place so that two test
    /// runs on one machine rarely meet.
    private static let range = 20_000...32_000
    private static let next = Mutex(Int.random(in: 0..<12_001))

    static func take() -> Int {
        let offset = next.withLock { offset in
            defer { offset = (offset + 1) % range.count }
            return offset
        }
        return range.lowerBound + offset
    }
}
