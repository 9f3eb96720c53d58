import Foundation
import KMSCore
import KMSTestSupport
import PostgresNIO
import Testing

@testable import KMSPostgres

/// A review finding: one key record that could not be read (a corrupt file or
/// row) made every scheduler pass throw, so no other key was deleted or
/// rotated on its schedule. Now the pass names that key and goes on.
@Suite(.shutsDownItsPools) struct ScheduledUnreadableKeyTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A key ring over `store` and two keys made in it, in key order.
    func twoKeys(_ store: any KeyStore, clock: ManualClock) async throws -> (KeyRing, KeyRecord, KeyRecord) {
        let keys = KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        let generated = [try await keys.generate(alias: nil), try await keys.generate(alias: nil)].sorted {
            $0.keyId < $1.keyId
        }
        return (keys, generated[0], generated[1])
    }

    /// Two keys pending deletion; the first one's record is then made unreadable.
    func schedulesTwoAndBreaksOne(
        _ store: any KeyStore, clock: ManualClock, breaking: (String) async throws -> any KeyStore
    ) async throws {
        let (keys, broken, sound) = try await twoKeys(store, clock: clock)
        for record in [broken, sound] { _ = try await keys.change(.scheduleDeletion(days: 7), on: record.keyId) }
        let reopened = try await breaking(broken.keyId)
        clock.advance(milliseconds: 8 * 86_400_000)
        let due = try await reopened.due(now: clock.now(), limit: 10)
        #expect(due.map(\.keyId) == [broken.keyId, sound.keyId])
        // The unreadable key does not take the due key's place (a review of 2026-12-06: on PostgreSQL a
        // hundred of them filled every pass's limit, and no key after them was deleted or rotated).
        #expect(try await reopened.due(now: clock.now(), limit: 1).map(\.keyId).contains(sound.keyId))
        let ring = KeyRing(
            store: reopened, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        var outcomes: [KeyRing.ScheduledOutcome] = []
        let failures = try await ring.runScheduled { outcomes.append($0) }
        #expect(failures.map(\.keyId) == [broken.keyId], "the unreadable key is named")
        #expect(outcomes.count == 1, "and the other one is deleted")
        #expect(try await reopened.key(id: sound.keyId) == nil)
    }

    @Test func aCorruptKeyFileDoesNotStopTheScheduler() async throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clock = ManualClock(Self.start)
        let lifecycle = KeyLifecycle(graceMs: 1000)
        let store = try FileKeyStore(folder: folder, lifecycle: lifecycle, clock: clock)
        try await schedulesTwoAndBreaksOne(store, clock: clock) { keyId in
            let file = folder.appendingPathComponent("keys/\(keyId).json")
            try Data("{not a key".utf8).write(to: file)
            return try FileKeyStore(folder: folder, lifecycle: lifecycle, clock: clock)
        }
    }

    @Test(
        .enabled(
            if: PostgresTestDatabase.url != nil,
            "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL case is skipped"))
    func aCorruptKeyRowDoesNotStopTheScheduler() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let clock = ManualClock(Self.start)
        let store = PostgresKeyStore(database: database, lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        try await schedulesTwoAndBreaksOne(store, clock: clock) { keyId in
            let table = database.table("keys")
            try await database.client.query(
                "UPDATE \(unescaped: table) SET record = '{not a key' WHERE key_id = \(keyId)")
            return store
        }
    }

    /// A row whose columns say due while its record does not (a rotation date written into the column of a
    /// key that does not rotate) is passed over, not counted against the pass's limit (the review of ed65407:
    /// the limit's other half had no test).
    @Test(
        .enabled(
            if: PostgresTestDatabase.url != nil,
            "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL case is skipped"))
    func aRowDueOnlyByItsColumnsTakesNoPlace() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let clock = ManualClock(Self.start)
        let store = PostgresKeyStore(database: database, lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        let (keys, first, second) = try await twoKeys(store, clock: clock)
        _ = try await keys.change(.scheduleDeletion(days: 7), on: second.keyId)
        try await database.client.query(
            "UPDATE \(unescaped: database.table("keys")) SET next_rotation_at = \(Self.start) WHERE key_id = \(first.keyId)"
        )
        clock.advance(milliseconds: 8 * 86_400_000)
        #expect(try await store.due(now: clock.now(), limit: 1).map(\.keyId) == [second.keyId])
    }

    /// A review finding: the PostgreSQL store served a row's record without checking that it names
    /// the row's key, so another key's record copied into the row answered for it (the file store
    /// checks this).
    @Test(
        .enabled(
            if: PostgresTestDatabase.url != nil,
            "KMS_TEST_POSTGRES_URL is not set: the PostgreSQL case is skipped"))
    func aRowHoldingAnotherKeysRecordIsRefused() async throws {
        let database = try await PostgresTestDatabase.fresh()
        let clock = ManualClock(Self.start)
        let store = PostgresKeyStore(database: database, lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        let (first, second) = (sampleRecord(), sampleRecord())
        try await store.create(first)
        try await store.create(second)
        let table = database.table("keys")
        try await database.client.query(
            """
            UPDATE \(unescaped: table) SET record = (SELECT record FROM \(unescaped: table) WHERE key_id = \(first.keyId))
            WHERE key_id = \(second.keyId)
            """)
        let refused = await #expect(throws: KMSError.self) { try await store.freshKey(id: second.keyId) }
        #expect(refused?.code == .serverBusy && refused?.detail?.contains("another key's record") == true)
        #expect(try await store.freshKey(id: first.keyId)?.keyId == first.keyId)
    }
}
