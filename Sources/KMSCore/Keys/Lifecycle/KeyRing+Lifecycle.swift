import Foundation

extension KeyRing {
    /// The key as it is, and whether `change` would change it: lets the
    /// server skip the audit of a no-op repeat (rule 9.5) and answer the
    /// `409`s before recording an intent. A change that would write a date is
    /// refused here too while the clock differs from the reference
    /// (`requireDateAgreement`), after the key's own refusals (a missing key is
    /// its `404`, not the clock's `503`): both doors call this before the
    /// intent, DryRun included, and `change` checks the clock again.
    public func preview(_ change: KeyChange, on reference: String) async throws(KMSError) -> (KeyRecord, Bool) {
        let record = try await resolve(reference, field: "keyId", fresh: true)
        var changed = record
        let changes = try change.apply(to: &changed, now: clock.now())
        if changes { try await requireDateAgreement(for: change) }
        return (record, changes)
    }

    /// Applies `change` under compare-and-set, retried on conflict.
    public func change(_ change: KeyChange, on reference: String) async throws(KMSError) -> KeyRecord {
        try await self.change(change, reportingWriteOn: reference).record
    }

    /// `change`, saying whether it wrote: `written` is false when a
    /// concurrent identical change got there first (the retry found nothing
    /// left to do). The routes' audit outcome says so, so one change is never
    /// recorded as two (a review).
    public func change(_ change: KeyChange, reportingWriteOn reference: String) async throws(KMSError) -> (
        record: KeyRecord, written: Bool
    ) {
        if change.writesADate { try await self.reference?.requireAgreement() }
        let changed = try await updateRetrying { () async throws(KMSError) in
            try await resolve(reference, field: "keyId", fresh: true)
        } change: { (record: inout KeyRecord) throws(KMSError) in
            try change.apply(to: &record, now: clock.now())
        }
        guard let changed else { throw Self.keyNotFound }
        return changed
    }

    /// The audit outcome's fields of a `change`: the key, and `changed=false`
    /// when it wrote nothing (rule 9.5: a no-op repeat is not a second change).
    public static func changeFields(_ outcome: (record: KeyRecord, written: Bool)) -> [(String, String)] {
        [("keyId", outcome.record.keyId)] + (outcome.written ? [] : [("changed", "false")])
    }

    /// What one scheduler pass did (lifecycle-v1 sections 1 and 2).
    public enum ScheduledOutcome: Sendable, Equatable {
        /// With the aliases the key had when the pass read it (the deletion removes the key's aliases, and
        /// an entry naming only the keyId left the reader to find which names went with it: an audit review).
        case deleted(keyId: String, aliases: [String] = [])
        case rotated(KeyRecord)
        /// Rotated because its active version reached `KeyLifecycle.rotateAfterEncryptions`.
        case rotatedForUsage(KeyRecord)
    }

    /// A change the scheduler is about to try, for its audit intent.
    public enum ScheduledChange: Sendable, Equatable {
        case delete(keyId: String, aliases: [String] = [])
        case rotate(keyId: String)
        /// Its active version reached `KeyLifecycle.rotateAfterEncryptions`.
        case rotateForUsage(keyId: String)
    }

    /// One scheduler pass: deletes due keys for good and rotates due keys,
    /// each by a conditional write, so that of several instances running it
    /// at once exactly one wins each change; a lost race writes nothing.
    ///
    /// `intent` is told of each change before its write and may refuse it by
    /// throwing (the caller makes a durable audit intent there: a process
    /// killed between the write and its entry left an irreversible deletion
    /// with no trace in the log, a review found; a log that cannot be written
    /// now delays the change to a later pass). `report` hears of each change
    /// this call made as soon as it is written (the caller audits it there, so
    /// a later failure cannot lose the entry); `unwritten` of each intended
    /// change that did not happen, with its error (nil: a lost race, or the key
    /// changed meanwhile). A key that fails is skipped and named in the result,
    /// and the others still run. `continuing` is asked before each key: a
    /// shutdown ends the pass between two keys, never inside a write.
    public func runScheduled(
        limit: Int = 100, continuing: () -> Bool = { true },
        intent: (ScheduledChange) async throws(KMSError) -> Void = { _ in },
        unwritten: (ScheduledChange, KMSError?) async -> Void = { _, _ in },
        report: (ScheduledOutcome) async -> Void
    ) async throws(KMSError) -> [(keyId: String, error: KMSError)] {
        let now = clock.now()
        var failures: [(keyId: String, error: KMSError)] = []
        for due in try await store.due(now: now, limit: limit) {
            guard continuing() else { break }
            let record: KeyRecord
            switch due {
            case .readable(let readable): record = readable
            case .unreadable(let keyId, let error):
                failures.append((keyId, error))
                continue
            }
            // The write about to be made: what `landed` looks for when it fails.
            var attempt: ScheduledOutcome?
            // Its audit intent, once written.
            var intended: ScheduledChange?
            do throws(KMSError) {
                if record.isDueForDeletion(at: now) {
                    let deletion = ScheduledChange.delete(keyId: record.keyId, aliases: record.aliases)
                    try await intent(deletion)
                    intended = deletion
                    attempt = .deleted(keyId: record.keyId, aliases: record.aliases)
                    if try await store.delete(keyId: record.keyId, expectedRevision: record.revision, now: now) {
                        await report(.deleted(keyId: record.keyId, aliases: record.aliases))
                    } else {
                        await unwritten(deletion, nil)
                    }
                } else if record.isDueForRotation(at: now), let days = record.rotationPeriodDays {
                    var next = record
                    // At the version limit the period passes without a version, and the pass names the key
                    // once a period: left due, it would be named at every pass, and such keys, listed
                    // first, would take the places of other keys' deletions and rotations.
                    let full: KMSError?
                    do throws(KMSError) {
                        try checkVersionRoom(record)
                        full = nil
                    } catch {
                        full = error
                    }
                    if full == nil {
                        try await intent(.rotate(keyId: record.keyId))
                        intended = .rotate(keyId: record.keyId)
                        try addVersion(to: &next)
                    }
                    // Missed periods collapse into one: the next is a period from now.
                    next.nextRotationAt = now.addingTimeInterval(Double(days) * 86_400)
                    next.revision = record.revision + 1
                    if full == nil { attempt = .rotated(next) }
                    if case .updated(let stored) = try await store.update(next, expectedRevision: record.revision) {
                        if let full { failures.append((record.keyId, full)) } else { await report(.rotated(stored)) }
                    } else if let intended {
                        await unwritten(intended, nil)
                    }
                }
            } catch {
                // Read again in a task of its own: a cancelled pass (a failing service stops the group)
                // would otherwise fail the read at once, and lose the entry of a write that landed.
                let ring = self
                let found = await Task { [attempt] in await ring.landed(attempt) }.value
                if let found {
                    await report(found)
                } else {
                    failures.append((record.keyId, error))
                    if let intended { await unwritten(intended, error) }
                }
            }
        }
        return failures
    }

    /// A write that failed may still have landed: a statement given up on
    /// for time commits all the same, and the file store's folder fsync
    /// fails after the rename. Read again, a deletion or rotation that
    /// happened is reported (and so audited) instead of being lost with its
    /// error, since the next pass would no longer find the key due. A
    /// rotation is recognised by its new version's wrapped material (fresh
    /// random bytes), and reported as written, whatever changed after it. A
    /// deletion found done may, rarely, be another instance's, which audits
    /// it too; a statement still running when the key is read again is not
    /// seen, and its change has no entry (the server's log names the key).
    private func landed(_ attempt: ScheduledOutcome?) async -> ScheduledOutcome? {
        switch attempt {
        case .deleted(let keyId, _):
            do {
                return try await store.freshKey(id: keyId) == nil ? attempt : nil
            } catch {
                return nil  // not known: counted as skipped
            }
        case .rotated(let written):
            guard let version = written.versions.last, let fresh = try? await store.freshKey(id: written.keyId),
                fresh.versions.contains(where: {
                    $0.version == version.version && $0.wrappedMaterial == version.wrappedMaterial
                })
            else { return nil }
            return attempt
        case .rotatedForUsage, nil:
            return nil
        }
    }
}
