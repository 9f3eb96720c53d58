import Foundation
import KMSCore
import KMSTestSupport
import Testing

/// A review finding: a scheduler write can land and still fail (a PostgreSQL statement given up on
/// for time commits all the same; the file store's folder fsync fails after the rename). The pass
/// logged "skipped a key", the next pass no longer found the key due, and the deletion or rotation
/// had no audit entry. Now a failed write is read again, and one that landed is reported.
@Suite struct ScheduledWriteTests {
    /// Forwards to an in-memory store; its deletes and updates fail, after the write (`landing`) or
    /// before it. `cancelling`: the failing write also cancels the pass's task (a failing service
    /// stops the group), and reads in a cancelled task fail at once, as a database call's do.
    final class FailingWrites: ForwardingKeyStore {
        let inner = InMemoryKeyStore()
        let landing: Bool
        let cancelling: Bool
        init(landing: Bool, cancelling: Bool = false) { (self.landing, self.cancelling) = (landing, cancelling) }

        static let failure = KMSError.internal("the write timed out")

        func fail() -> KMSError {
            if cancelling { withUnsafeCurrentTask { $0?.cancel() } }
            return Self.failure
        }

        func key(id: String) async throws(KMSError) -> KeyRecord? {
            if Task.isCancelled { throw KMSError(.serverBusy, "cancelled") }
            return try await inner.key(id: id)
        }
        func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
            guard landing else { throw fail() }
            _ = try await inner.update(record, expectedRevision: expectedRevision)
            throw fail()
        }
        func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
            guard landing else { throw fail() }
            _ = try await inner.delete(keyId: keyId, expectedRevision: expectedRevision, now: now)
            throw fail()
        }
    }

    /// One key pending deletion and one due for rotation, a pass over `store` nine days on.
    func pass(landing: Bool, cancelling: Bool = false) async throws -> (
        outcomes: [KeyRing.ScheduledOutcome], failures: [String], doomed: String, rotating: String
    ) {
        let store = FailingWrites(landing: landing, cancelling: cancelling)
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
        let keys = KeyRing(
            store: store.inner, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        let doomed = try await keys.generate(alias: nil).keyId
        _ = try await keys.change(.scheduleDeletion(days: 7), on: doomed)
        let rotating = try await keys.generate(alias: nil).keyId
        _ = try await keys.change(.rotation(periodDays: 1), on: rotating)
        clock.advance(milliseconds: 9 * 86_400_000)
        let ring = KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        // In a task of its own, which the cancelling store cancels.
        let (outcomes, failures) = try await Task {
            var outcomes: [KeyRing.ScheduledOutcome] = []
            let failures = try await ring.runScheduled { outcomes.append($0) }
            return (outcomes, failures.map(\.keyId))
        }.value
        return (outcomes, failures, doomed, rotating)
    }

    @Test(arguments: [false, true])
    func aWriteThatLandedBeforeItsErrorIsReported(cancelling: Bool) async throws {
        let run = try await pass(landing: true, cancelling: cancelling)
        #expect(run.failures.isEmpty, "\(run.failures)")
        #expect(run.outcomes.contains(.deleted(keyId: run.doomed)))
        let rotated = run.outcomes.compactMap { if case .rotated(let record) = $0 { record } else { nil } }
        #expect(rotated.map(\.keyId) == [run.rotating] && rotated.first?.activeVersion == 2)
    }

    @Test func aWriteThatDidNotLandIsASkippedKey() async throws {
        let run = try await pass(landing: false)
        #expect(run.outcomes.isEmpty)
        #expect(Set(run.failures) == [run.doomed, run.rotating])
    }

    /// A shutdown ends a pass between two keys.
    @Test func aPassStopsBetweenKeysWhenAskedTo() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
        let keys = KeyRing(
            store: InMemoryKeyStore(), masterKey: try MasterKey(bytes: Data(repeating: 1, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 1000), clock: clock)
        for _ in 0..<3 {
            _ = try await keys.change(.scheduleDeletion(days: 7), on: try await keys.generate(alias: nil).keyId)
        }
        clock.advance(milliseconds: 8 * 86_400_000)
        var outcomes: [KeyRing.ScheduledOutcome] = []
        var asked = 0
        _ = try await keys.runScheduled(
            continuing: {
                asked += 1
                return asked <= 1
            }, report: { outcomes.append($0) })
        #expect(outcomes.count == 1)
    }
}
