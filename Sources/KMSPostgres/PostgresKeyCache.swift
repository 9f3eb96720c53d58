import KMSCore
import Synchronization

/// Key records cached on one instance, so that a sealed call does not read its
/// key from the database (issue 18): the key row read was two of a sealed
/// encrypt's eight round trips.
///
/// Correctness across instances comes from migration 4's trigger: every change
/// to a key or alias row, by any writer, sends `NOTIFY <prefix>keys, key_id`,
/// and `PostgresKeyStore.listenForKeyChanges` drops that key here. The cache
/// only answers while that listener is connected (`listening`); losing the
/// connection empties it and turns it off until the listener is back. An entry
/// also expires after `maxAge` (one second) however quiet the channel, so a
/// change elsewhere reaches this instance within a second even if a
/// notification were lost, and usually within milliseconds. Misses are not
/// cached (a key created elsewhere is found at once). A read that began before
/// an invalidation never stores its (possibly older) result: every
/// invalidation moves `generation`, and `store` checks it.
final class PostgresKeyCache: Sendable {
    private struct Entry {
        let record: KeyRecord
        let stored: ContinuousClock.Instant
    }

    private struct State {
        var listening = false
        var generation: UInt64 = 0
        var byId: [String: Entry] = [:]
        var byAlias: [String: String] = [:]
    }

    let maxAge: Duration
    let maxEntries: Int
    private let state = Mutex(State())

    init(maxAge: Duration = .seconds(1), maxEntries: Int = 10_000) {
        self.maxAge = maxAge
        self.maxEntries = maxEntries
    }

    /// Where a read starts: the generation, and the time an entry's age counts
    /// from (nil when the cache is off).
    struct ReadStart {
        let generation: UInt64
        let time: ContinuousClock.Instant
    }

    func readStart() -> ReadStart? {
        state.withLock { $0.listening ? ReadStart(generation: $0.generation, time: .now) : nil }
    }

    func record(id: String) -> KeyRecord? {
        state.withLock { state in fresh(state.byId[id], state) }
    }

    /// The record the alias named when it was cached, if that record still
    /// lists it: a record re-read after the alias moved, before the move's
    /// notification arrived, does not, and the alias is then read afresh.
    func record(alias: String) -> KeyRecord? {
        state.withLock { state in
            guard let keyId = state.byAlias[alias], let record = fresh(state.byId[keyId], state),
                record.aliases.contains(alias)
            else { return nil }
            return record
        }
    }

    private func fresh(_ entry: Entry?, _ state: State) -> KeyRecord? {
        guard state.listening, let entry, ContinuousClock.now - entry.stored < maxAge else { return nil }
        return entry.record
    }

    /// Keeps `record` (read from `start`) unless something changed since. Its
    /// age counts from the start of the read, so an entry is never older than
    /// `maxAge` even when the read was slow.
    func store(_ record: KeyRecord, readAt start: ReadStart) {
        state.withLock { state in
            guard state.listening, state.generation == start.generation else { return }
            if state.byId.count >= maxEntries {
                state.byId.removeAll(keepingCapacity: true)
                state.byAlias.removeAll(keepingCapacity: true)
            }
            // An alias the older entry listed and this record does not moved (or went) after it was cached.
            for alias in state.byId[record.keyId]?.record.aliases ?? []
            where !record.aliases.contains(alias) && state.byAlias[alias] == record.keyId {
                state.byAlias[alias] = nil
            }
            state.byId[record.keyId] = Entry(record: record, stored: start.time)
            for alias in record.aliases { state.byAlias[alias] = record.keyId }
        }
    }

    /// A notification: the key `keyId` (or one of its aliases) changed.
    func invalidate(keyId: String) {
        state.withLock { state in
            state.generation &+= 1
            state.byId[keyId] = nil
            state.byAlias = state.byAlias.filter { $0.value != keyId }
        }
    }

    /// The listener connected (on) or lost its connection (off): either way
    /// nothing cached so far can be trusted.
    func setListening(_ on: Bool) {
        state.withLock { state in
            state.listening = on
            state.generation &+= 1
            state.byId.removeAll()
            state.byAlias.removeAll()
        }
    }
}
