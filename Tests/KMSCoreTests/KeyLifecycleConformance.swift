import Foundation
import KMSCore
import KMSProtocol
import Testing

/// lifecycle-v1 section 7: the `KeyStore` additions (aliases as records,
/// conditional deletion, due keys, record v2), the same on every store.
@Suite(.shutsDownItsPools) struct KeyLifecycleConformance {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    func ring(_ store: any KeyStore, _ clock: ManualClock) throws -> KeyRing {
        KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
    }

    /// One scheduler pass; what it changed (a failure is an issue).
    func pass(_ ring: KeyRing) async throws -> [KeyRing.ScheduledOutcome] {
        var outcomes: [KeyRing.ScheduledOutcome] = []
        let failures = try await ring.runScheduled { outcomes.append($0) }
        #expect(failures.isEmpty)
        return outcomes
    }

    @Test(arguments: KeyStoreFactory.all)
    func lifecycleMembersSurviveTheStore(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        var record = sampleRecord(alias: "photos")
        record.state = .pendingDeletion
        record.deletionDate = Self.start.addingTimeInterval(86_400 * 7)
        record.pendingWindowDays = 7
        record.rotationPeriodDays = 90
        record.nextRotationAt = Self.start.addingTimeInterval(86_400 * 90)
        record.description = "line one\nquote \" backslash \\ tab\t émoji 📷"
        record.tags = ["owner": "ana", "ключ": "значение", "empty": ""]
        try await store.create(record)
        #expect(try await store.key(id: record.keyId) == record)
        #expect(try await store.key(alias: "photos") == record)
        var changed = record
        changed.state = .disabled
        changed.deletionDate = nil
        changed.pendingWindowDays = nil
        changed.tags = [:]
        guard case .updated(let stored) = try await store.update(changed, expectedRevision: 1) else {
            Issue.record("update lost a race it could not lose")
            return
        }
        changed.revision = 2
        #expect(stored == changed)
        #expect(try await store.key(id: record.keyId) == changed)
    }

    @Test(arguments: KeyStoreFactory.all)
    func aliasesAreRecords(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let first = sampleRecord(alias: "b-photos")
        let second = sampleRecord()
        try await store.create(first)
        try await store.create(second)
        let now = Self.start.addingTimeInterval(60)
        try await store.createAlias(AliasRecord(alias: "a-photos", keyId: first.keyId, createdAt: now, updatedAt: now))
        let taken = await #expect(throws: KMSError.self) {
            try await store.createAlias(
                AliasRecord(alias: "a-photos", keyId: second.keyId, createdAt: now, updatedAt: now))
        }
        #expect(taken?.code == .aliasInUse)
        let refused = await #expect(throws: KMSError.self) { try await store.create(sampleRecord(alias: "a-photos")) }
        #expect(refused?.code == .aliasInUse)
        #expect(try await store.key(id: first.keyId)?.aliases == ["a-photos", "b-photos"])
        #expect(try await store.key(alias: "a-photos")?.keyId == first.keyId)
        #expect(
            try await store.alias("a-photos")
                == AliasRecord(alias: "a-photos", keyId: first.keyId, createdAt: now, updatedAt: now))
        #expect(try await store.alias("nothing") == nil)

        // Move: compare-and-set on the key it names now.
        let later = now.addingTimeInterval(60)
        #expect(try await !store.moveAlias("a-photos", expectedKeyId: second.keyId, to: first.keyId, at: later))
        #expect(try await store.moveAlias("a-photos", expectedKeyId: first.keyId, to: second.keyId, at: later))
        let moved = try #require(try await store.alias("a-photos"))
        #expect(moved.keyId == second.keyId && moved.createdAt == now && moved.updatedAt == later)
        #expect(try await store.key(id: first.keyId)?.aliases == ["b-photos"])
        #expect(try await store.key(id: second.keyId)?.aliases == ["a-photos"])

        // List: byte order, exclusive cursor, by key.
        #expect(
            try await store.listAliases(after: nil, limit: 10, keyId: nil).map(\.alias) == ["a-photos", "b-photos"])
        #expect(try await store.listAliases(after: "a-photos", limit: 10, keyId: nil).map(\.alias) == ["b-photos"])
        #expect(try await store.listAliases(after: nil, limit: 1, keyId: nil).map(\.alias) == ["a-photos"])
        #expect(try await store.listAliases(after: nil, limit: 10, keyId: first.keyId).map(\.alias) == ["b-photos"])

        // Delete: compare-and-set too.
        #expect(try await !store.deleteAlias("a-photos", expectedKeyId: first.keyId))
        #expect(try await store.deleteAlias("a-photos", expectedKeyId: second.keyId))
        #expect(try await store.alias("a-photos") == nil)
        #expect(try await store.key(alias: "a-photos") == nil)
        #expect(try await store.key(id: second.keyId)?.aliases == [])
    }

    /// A review finding: the target's state was checked before the write only, so a deletion
    /// scheduled in between left a pending key with a new alias, and a move onto a key deleted in
    /// between answered "changed concurrently" (503). The store judges the target where it writes.
    @Test(arguments: KeyStoreFactory.all)
    func aliasesTakeOnlyKeysThatMayHaveThem(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let keys = try ring(store, ManualClock(Self.start))
        let open = try await keys.generate(alias: "open")
        let doomed = try await keys.generate(alias: "doomed")
        _ = try await keys.change(.scheduleDeletion(days: 7), on: "doomed")
        let now = Self.start
        // Straight to the store, as a request that looked the key up before its deletion was scheduled.
        let created = await #expect(throws: KMSError.self) {
            try await store.createAlias(AliasRecord(alias: "late", keyId: doomed.keyId, createdAt: now, updatedAt: now))
        }
        #expect(created?.code == .keyPendingDeletion)
        // A restore's or migration's copy of an alias the key already had is written (it keeps its aliases).
        try await store.createAlias(
            AliasRecord(alias: "copied", keyId: doomed.keyId, createdAt: now, updatedAt: now), copying: true)
        #expect(try await store.alias("copied")?.keyId == doomed.keyId)
        let moved = await #expect(throws: KMSError.self) {
            try await store.moveAlias("open", expectedKeyId: open.keyId, to: doomed.keyId, at: now)
        }
        #expect(moved?.code == .keyPendingDeletion)
        #expect(try await store.alias("open")?.keyId == open.keyId)
        #expect(try await store.alias("late") == nil)
        // Deleted meanwhile: 404, not "changed concurrently".
        #expect(
            try await store.delete(keyId: doomed.keyId, expectedRevision: 2, now: now.addingTimeInterval(86_400 * 7)))
        let gone = await #expect(throws: KMSError.self) {
            try await store.moveAlias("open", expectedKeyId: open.keyId, to: doomed.keyId, at: now)
        }
        #expect(gone?.code == .keyNotFound)
        let goneCreate = await #expect(throws: KMSError.self) {
            try await store.createAlias(AliasRecord(alias: "late", keyId: doomed.keyId, createdAt: now, updatedAt: now))
        }
        #expect(goneCreate?.code == .keyNotFound)
        // An alias changed meanwhile is still `false`, and a taken alias `alias_in_use`.
        #expect(try await !store.moveAlias("open", expectedKeyId: doomed.keyId, to: open.keyId, at: now))
        let taken = await #expect(throws: KMSError.self) {
            try await store.createAlias(AliasRecord(alias: "open", keyId: open.keyId, createdAt: now, updatedAt: now))
        }
        #expect(taken?.code == .aliasInUse)
    }

    @Test(arguments: KeyStoreFactory.all)
    func deletionIsConditionalAndTakesTheAliases(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let clock = ManualClock(Self.start)
        let keys = try ring(store, clock)
        let record = try await keys.generate(alias: "doomed")
        let due = Self.start.addingTimeInterval(86_400 * 7)
        // Not pending: never deleted.
        #expect(try await !store.delete(keyId: record.keyId, expectedRevision: 1, now: due))
        let pending = try await keys.change(.scheduleDeletion(days: 7), on: "doomed")
        #expect(pending.deletionDate == due && pending.state == .pendingDeletion)
        #expect(try await store.due(now: due.addingTimeInterval(-1), limit: 10).isEmpty)
        #expect(try await store.due(now: due, limit: 10).map(\.keyId) == [record.keyId])
        // Too early, or a stale revision: nothing.
        #expect(try await !store.delete(keyId: record.keyId, expectedRevision: 2, now: due.addingTimeInterval(-1)))
        #expect(try await !store.delete(keyId: record.keyId, expectedRevision: 1, now: due))
        #expect(try await store.delete(keyId: record.keyId, expectedRevision: 2, now: due))
        #expect(try await !store.delete(keyId: record.keyId, expectedRevision: 2, now: due))
        #expect(try await store.key(id: record.keyId) == nil)
        #expect(try await store.key(alias: "doomed") == nil)
        #expect(try await store.alias("doomed") == nil)
        #expect(try await store.count() == 0)
        // The alias is free again.
        _ = try await keys.generate(alias: "doomed")
    }

    /// A review finding: nothing counted AES-GCM encryptions under a version, whose random 96-bit
    /// nonces are safe for 2^32 of them. Each process counts; the scheduler adds the counts to the
    /// store (beside the records) and rotates a key whose active version reached the limit (5 here).
    @Test(arguments: KeyStoreFactory.all)
    func encryptionsAreCountedAndRotateAtTheLimit(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let clock = ManualClock(Self.start)
        let keys = KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000, rotateAfterEncryptions: 5), clock: clock)
        let busy = try await keys.generate(alias: "busy")
        let quiet = try await keys.generate(alias: "quiet")
        for _ in 0..<4 { _ = try await keys.encrypt("busy", plaintext: Data("p".utf8), aad: Data()) }
        let sealed = try await keys.dataKey("busy", bytes: 32, aad: Data())
        _ = try await keys.rewrap(sealed.ciphertext, aad: Data())
        _ = try await keys.encrypt("quiet", plaintext: Data("p".utf8), aad: Data())
        var outcomes: [KeyRing.ScheduledOutcome] = []
        #expect(await keys.recordUsage { outcomes.append($0) }.isEmpty)
        let rotated = try #require(try await store.key(id: busy.keyId))
        #expect(outcomes == [.rotatedForUsage(rotated)] && rotated.activeVersion == 2)
        let nothingMore = [busy.keyId: [1: UInt64(0), 2: 0], quiet.keyId: [1: 0]]
        #expect(try await store.addEncryptions(nothingMore) == [busy.keyId: [1: 6, 2: 0], quiet.keyId: [1: 1]])
        // Counted once: a second call with nothing new changes nothing.
        #expect(await keys.recordUsage { outcomes.append($0) }.isEmpty)
        #expect(try await store.key(id: busy.keyId)?.revision == rotated.revision && outcomes.count == 1)
        // A disabled key is counted, never rotated (its encryptions came before the brake).
        for _ in 0..<5 { _ = try await keys.encrypt("quiet", plaintext: Data("p".utf8), aad: Data()) }
        _ = try await keys.change(.disable, on: "quiet")
        #expect(await keys.recordUsage { outcomes.append($0) }.isEmpty)
        #expect(try await store.key(id: quiet.keyId)?.activeVersion == 1 && outcomes.count == 1)
        #expect(try await store.addEncryptions([quiet.keyId: [1: 0]]) == [quiet.keyId: [1: 6]])
        // Totals stop at Int64.max; a key that does not exist is left out.
        let huge = UInt64(Int64.max) - 1
        #expect(try await store.addEncryptions([quiet.keyId: [1: huge]]) == [quiet.keyId: [1: UInt64(Int64.max)]])
        #expect(try await store.addEncryptions(["key_AAAAAAAAAAAAAAAAAAAAAA": [1: 3]]).isEmpty)
        // The records themselves are unchanged by counting: lifecycle-v1's format, readable by earlier builds.
        #expect(try await store.key(id: quiet.keyId)?.revision == 2)
    }

    /// Two schedulers on one store: each due change happens exactly once.
    @Test(arguments: KeyStoreFactory.all)
    func twoSchedulersChangeEachKeyOnce(_ factory: KeyStoreFactory) async throws {
        let store = try await factory.make()
        let clock = ManualClock(Self.start)
        let (one, two) = (try ring(store, clock), try ring(store, clock))
        let rotating = try await one.generate(alias: "rotating")
        _ = try await one.change(.rotation(periodDays: 1), on: "rotating")
        let doomed = try await one.generate(alias: "doomed")
        _ = try await one.change(.scheduleDeletion(days: 7), on: "doomed")
        let idle = try await one.generate(alias: nil)
        _ = try await one.change(.disable, on: idle.keyId)
        _ = try await one.change(.rotation(periodDays: nil), on: idle.keyId)

        clock.advance(milliseconds: 86_400_000 * 8)  // a week of missed periods, and the deletion date
        async let first = pass(one)
        async let second = pass(two)
        let outcomes = try await first + second
        let rotations = outcomes.filter { if case .rotated = $0 { return true } else { return false } }
        #expect(rotations.count == 1)
        #expect(outcomes.filter { $0 == .deleted(keyId: doomed.keyId, aliases: ["doomed"]) }.count == 1)
        #expect(outcomes.count == 2)
        let rotated = try #require(try await store.key(id: rotating.keyId))
        #expect(rotated.activeVersion == 2)  // missed periods collapse into one
        #expect(rotated.nextRotationAt == clock.now().addingTimeInterval(86_400))
        #expect(try await store.key(id: doomed.keyId) == nil)
        #expect(try await pass(one).isEmpty)
        #expect(try await pass(two).isEmpty)
        #expect(try await store.key(id: idle.keyId)?.activeVersion == 1)
    }
}
