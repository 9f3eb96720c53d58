import Foundation
import KMSCore
import KMSProtocol
import Synchronization

/// Sessions this instance has recently served, by token hash, so that a sealed
/// call does not read its session row before the one statement it must run
/// anyway (issue 18).
///
/// What makes this safe across instances is that the cache only ever saves the
/// *lookup*: every sealed request still runs `accept_seq` in the database,
/// which checks in the same statement that the row exists, is live and still
/// has this token hash, before it accepts the seq. A session ended, revoked
/// or rotated on another instance is therefore refused by that statement at
/// once (`SealedChannel` answers it as an unknown session, in plain JSON, as
/// if the lookup had failed), and an envelope accepted by one instance is
/// refused by every other. What is cached never changes for a session (its
/// id, key and client); an entry whose expiry has passed is read again (the
/// database may have slid it), entries live at most `maxAge`, and this
/// instance drops its own ended or rotated sessions at once.
final class PostgresSessionCache: Sendable {
    private struct Entry {
        let record: SessionRecord
        let stored: ContinuousClock.Instant
    }

    let maxAge: Duration
    let maxEntries: Int
    private let entries = Mutex<[TokenHash: Entry]>([:])

    init(maxAge: Duration = .seconds(30), maxEntries: Int = 10_000) {
        self.maxAge = maxAge
        self.maxEntries = maxEntries
    }

    func session(_ tokenHash: TokenHash, now: Date) -> SessionRecord? {
        entries.withLock { entries in
            guard let entry = entries[tokenHash] else { return nil }
            guard ContinuousClock.now - entry.stored < maxAge, entry.record.expiresAt > now else {
                entries[tokenHash] = nil
                return nil
            }
            return entry.record
        }
    }

    func store(_ record: SessionRecord) {
        entries.withLock { entries in
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[record.tokenHash] = Entry(record: record, stored: .now)
        }
    }

    /// One entry, in constant time: what a request whose envelope did not
    /// open under its cached session costs (anyone who saw a live token can
    /// send those, so it must not rebuild the table under the lock).
    func remove(tokenHash: TokenHash) {
        _ = entries.withLock { $0.removeValue(forKey: tokenHash) }
    }

    /// Every entry `predicate` names (a session ended or rotated here, a client's sessions).
    func remove(where predicate: (SessionRecord) -> Bool) {
        entries.withLock { entries in entries = entries.filter { !predicate($0.value.record) } }
    }
}
