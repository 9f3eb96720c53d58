import Foundation

extension KeyRing {
    /// Adds this process's encryption counts to the store
    /// (`KeyStore.addEncryptions`, summed across instances there), and
    /// rotates a key whose active version reached
    /// `lifecycle.rotateAfterEncryptions`.
    ///
    /// Why: the key versions' AES-GCM nonces are random 96-bit values, which
    /// NIST SP 800-38D bounds to 2^32 encryptions under one key; past that a
    /// nonce collision (which gives away the key's authentication subkey)
    /// stops being negligible. A key that is not enabled is counted, not
    /// rotated (nothing encrypts under it meanwhile; its next count after it
    /// is enabled rotates it). Counts the store could not take are kept for
    /// the next call; a key that fails is named in the result.
    /// `intent`, `unwritten` and `report` as `runScheduled` has them.
    public func recordUsage(
        intent: (ScheduledChange) async throws(KMSError) -> Void = { _ in },
        unwritten: (ScheduledChange, KMSError?) async -> Void = { _, _ in },
        report: (ScheduledOutcome) async -> Void
    ) async -> [(keyId: String, error: KMSError)] {
        let counts = usage.take()
        guard !counts.isEmpty else { return [] }
        let totals: [String: [Int: UInt64]]
        do {
            totals = try await store.addEncryptions(counts)
        } catch {
            for (keyId, versions) in counts { usage.giveBack(keyId: keyId, versions) }
            return counts.keys.sorted().map { ($0, error) }
        }
        var failures: [(keyId: String, error: KMSError)] = []
        for (keyId, versions) in totals.sorted(by: { $0.key < $1.key }) {
            guard let newest = versions.max(by: { $0.key < $1.key }),
                newest.value >= lifecycle.rotateAfterEncryptions
            else { continue }
            var intended = false
            do throws(KMSError) {
                // Only a key that would rotate gets an intent: a disabled one, or one another instance
                // rotated already, would otherwise add an intent and its outcome at every pass.
                guard let current = try await store.freshKey(id: keyId), current.state == .enabled,
                    current.activeVersion == newest.key
                else { continue }
                // Not held while the clock is wrong (a version past 2^31 encryptions would go on encrypting
                // toward the nonces' bound: the second review): dated by the reference instead, since its
                // date starts the old version's grace period, which a clock behind would end at once. A
                // reference that cannot be read (the database away) fails this key for this pass, reported
                // as any failure is, rather than dating the version by the host's clock (a review); read
                // before the intent, so such a pass records nothing (it is tried at the key's next count).
                let date = try await reference?.now()
                try await intent(.rotateForUsage(keyId: keyId))
                intended = true
                if let rotated = try await rotate(keyId, from: newest.key, at: date) {
                    await report(.rotatedForUsage(rotated))
                } else {
                    await unwritten(.rotateForUsage(keyId: keyId), nil)
                }
            } catch {
                failures.append((keyId, error))
                if intended { await unwritten(.rotateForUsage(keyId: keyId), error) }
            }
        }
        return failures
    }

    /// Rotates `keyId` if `version` is still its active version and it is
    /// enabled (a conditional write: of several instances, one rotates).
    private func rotate(_ keyId: String, from version: Int, at date: Date?) async throws(KMSError) -> KeyRecord? {
        let rotated = try await updateRetrying { () async throws(KMSError) in
            try await store.freshKey(id: keyId)
        } change: { (record: inout KeyRecord) throws(KMSError) in
            guard record.state == .enabled, record.activeVersion == version else { return false }
            try addVersion(to: &record, pastLimit: true, at: date)
            return true
        }
        guard let rotated, rotated.written else { return nil }
        return rotated.record
    }
}
