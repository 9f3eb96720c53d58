import Synchronization

/// Encryptions this process made under each key version, not yet added to
/// the store. Counting in memory keeps a store write off every
/// encrypt; `KeyRing.recordUsage` adds them to the store once a scheduler
/// pass, so a crash loses at most one pass's count (the rotation threshold
/// leaves room for that).
final class KeyUsage: Sendable {
    struct Version: Hashable {
        let keyId: String
        let version: Int
    }

    private let pending = Mutex<[Version: UInt64]>([:])

    func count(keyId: String, version: Int) {
        pending.withLock { $0[Version(keyId: keyId, version: version), default: 0] &+= 1 }
    }

    /// Everything counted so far, by key; the counter starts again from zero.
    func take() -> [String: [Int: UInt64]] {
        let taken = pending.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
        var byKey: [String: [Int: UInt64]] = [:]
        for (version, count) in taken { byKey[version.keyId, default: [:]][version.version] = count }
        return byKey
    }

    /// Counts a failed write did not store, kept for the next pass.
    func giveBack(keyId: String, _ counts: [Int: UInt64]) {
        pending.withLock { pending in
            for (version, count) in counts { pending[Version(keyId: keyId, version: version), default: 0] &+= count }
        }
    }
}
