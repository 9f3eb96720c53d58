extension KeyRing {
    /// Adds this process's encryption counts to the stored records, and
    /// rotates a key whose active version reached
    /// `lifecycle.rotateAfterEncryptions`, in the same conditional write.
    ///
    /// Why: the key versions' AES-GCM nonces are random 96-bit values, which
    /// NIST SP 800-38D bounds to 2^32 encryptions under one key; past that a
    /// nonce collision (which gives away the key's authentication subkey)
    /// stops being negligible. The count is summed across instances through
    /// the store, like any change of a record. A key that is not enabled is
    /// counted but not rotated (rotation is refused there; nothing encrypts
    /// under it meanwhile). Counts a failed write could not store are kept
    /// for the next call, and the key is named in the result.
    public func recordUsage(report: (ScheduledOutcome) async -> Void) async -> [(keyId: String, error: KMSError)] {
        var failures: [(keyId: String, error: KMSError)] = []
        for (keyId, counts) in usage.take().sorted(by: { $0.key < $1.key }) {
            do throws(KMSError) {
                if let rotated = try await addUsage(counts, to: keyId) { await report(.rotatedForUsage(rotated)) }
            } catch {
                usage.giveBack(keyId: keyId, counts)
                failures.append((keyId, error))
            }
        }
        return failures
    }

    /// The stored record with `counts` added; the rotated record when the
    /// write also rotated it, nil otherwise (also when the key is gone).
    private func addUsage(_ counts: [Int: UInt64], to keyId: String) async throws(KMSError) -> KeyRecord? {
        for _ in 0..<64 {
            guard var record = try await store.freshKey(id: keyId) else { return nil }
            let expected = record.revision
            for index in record.versions.indices {
                record.versions[index].encryptions &+= counts[record.versions[index].version] ?? 0
            }
            let rotating =
                record.state == .enabled
                && (record.versions.last?.encryptions ?? 0) >= lifecycle.rotateAfterEncryptions
            if rotating { try addVersion(to: &record) }
            switch try await store.update(record, expectedRevision: expected) {
            case .updated(let stored): return rotating ? stored : nil
            case .conflict: continue
            }
        }
        throw KMSError.keyStoreConflict
    }
}
