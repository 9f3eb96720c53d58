import Foundation
public import KMSCore
import KMSProtocol
import Logging
import NIOCore
import PostgresNIO

/// `KeyStore` in PostgreSQL, shared by every instance.
///
/// One row per key holding the same readable JSON as the file store's key
/// file, with `state`, `deletion_date` and `next_rotation_at` copied into
/// columns for the scheduler's indexes; aliases are rows of their own
/// (`kms_aliases`, deleted with their key by the foreign key's cascade).
/// Compare-and-set is `UPDATE … WHERE revision = expected`, so two instances
/// rotating one key can never both win; deletion is one conditional `DELETE`.
public final class PostgresKeyStore: KeyStore {
    let database: PostgresDatabase
    let lifecycle: KeyLifecycle
    let clock: any KMSClock
    let cache: PostgresKeyCache

    public convenience init(database: PostgresDatabase, lifecycle: KeyLifecycle, clock: any KMSClock) {
        self.init(database: database, lifecycle: lifecycle, clock: clock, cache: PostgresKeyCache())
    }

    /// With its own cache: a test gives one whose entries outlive its wait, so that only a notification
    /// can bring a change in time.
    init(database: PostgresDatabase, lifecycle: KeyLifecycle, clock: any KMSClock, cache: PostgresKeyCache) {
        self.database = database
        self.lifecycle = lifecycle
        self.clock = clock
        self.cache = cache
    }

    private var table: String { database.table("keys") }
    private var aliases: String { database.table("aliases") }
    private var logger: Logger { database.logger }

    /// The record and its aliases, sorted by bytes.
    private var selectRecord: String {
        """
        SELECT k.key_id, k.record, ARRAY(SELECT a.alias FROM \(aliases) a WHERE a.key_id = k.key_id ORDER BY a.alias)
        FROM \(table) k
        """
    }

    private func encode(_ record: KeyRecord) -> String {
        let now = clock.now()
        return String(
            decoding: KeyFileFormat.encode(record) { self.lifecycle.status(record, version: $0, now: now) },
            as: UTF8.self)
    }

    /// The row's record, which must name the row's key: the master key's wrapping binds a version's
    /// material to the id inside the record, so a record copied under another row's id would
    /// otherwise serve requests for that id with the first key (the file store checks the same).
    private func decode(_ text: String, keyId: String, aliases: [String]) throws(KMSError) -> KeyRecord {
        try KeyFileFormat.decodeStored(Data(text.utf8), keyId: keyId, place: "the key row \(keyId)")
            .withAliases(aliases)
    }

    public func create(_ record: KeyRecord) async throws(KMSError) {
        defer { cache.invalidate(keyId: record.keyId) }
        let (database, logger, table, aliases, text) = (database, logger, table, aliases, encode(record))
        let inUse = record.aliases.first.map(KMSError.aliasInUse)
        try await database.transaction("create key", uniqueViolation: inUse) { connection in
            var inserted = false
            for try await _ in try await connection.query(
                """
                INSERT INTO \(unescaped: table) (key_id, revision, record, state, deletion_date, next_rotation_at)
                VALUES (\(record.keyId), \(record.revision), \(text), \(record.state.rawValue),
                        \(record.deletionDate), \(record.nextRotationAt))
                ON CONFLICT DO NOTHING RETURNING key_id
                """, logger: logger)
            {
                inserted = true
            }
            guard inserted else { throw KMSError.internal("duplicate key id") }
            for alias in record.aliases {
                var claimed = false
                for try await _ in try await connection.query(
                    """
                    INSERT INTO \(unescaped: aliases) (alias, key_id, created_at, updated_at)
                    VALUES (\(alias), \(record.keyId), \(record.createdAt), \(record.createdAt))
                    ON CONFLICT DO NOTHING RETURNING alias
                    """, logger: logger)
                {
                    claimed = true
                }
                guard claimed else { throw KMSError.aliasInUse(alias) }
            }
        }
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        if let cached = cache.record(id: id) { return cached }
        return try await read(id: id)
    }

    /// From the database, whatever the cache holds (which it then replaces,
    /// or drops when the key is gone).
    public func freshKey(id: String) async throws(KMSError) -> KeyRecord? {
        let record = try await read(id: id)
        if record == nil, cache.record(id: id) != nil { cache.invalidate(keyId: id) }
        return record
    }

    private func read(id: String) async throws(KMSError) -> KeyRecord? {
        try await cached("\(unescaped: selectRecord) WHERE k.key_id = \(id)")
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        if let cached = cache.record(alias: alias) { return cached }
        return try await read(alias: alias)
    }

    /// From the database, as `freshKey(id:)`; an alias the cache still
    /// places on a key drops that key's entry when the database disagrees.
    public func freshKey(alias: String) async throws(KMSError) -> KeyRecord? {
        let cached = cache.record(alias: alias)
        let record = try await read(alias: alias)
        if let cached, cached.keyId != record?.keyId { cache.invalidate(keyId: cached.keyId) }
        return record
    }

    private func read(alias: String) async throws(KMSError) -> KeyRecord? {
        try await cached(
            "\(unescaped: selectRecord) WHERE k.key_id = (SELECT key_id FROM \(unescaped: aliases) WHERE alias = \(alias))"
        )
    }

    /// Reads one record and caches it (when the cache is on and nothing changed meanwhile).
    private func cached(_ query: PostgresQuery) async throws(KMSError) -> KeyRecord? {
        let start = cache.readStart()
        let record = try await records("read key", query).first
        if let record, let start { cache.store(record, readAt: start) }
        return record
    }

    /// Keeps this instance's key cache honest: listens on `<prefix>keys` for
    /// migration 4's notifications and drops each changed key, until the task
    /// is cancelled (`kms serve` runs it as a service). While it is not
    /// connected the cache is off and every read goes to the database; it
    /// reconnects every second.
    ///
    /// A connection can die without a word (a NAT or firewall forgetting an idle flow, a failover
    /// that moves the database's address): notifications then simply stop, and the running lock
    /// this connection holds for `kms restore` and `kms migrate` is gone with its backend while
    /// this instance still serves. So the listener asks `SELECT 1` every `heartbeat` and takes a
    /// missing answer within `answerWithin` (the calls' deadline by default) for a lost connection.
    /// An outage is said once at warning, then once every `repeatWarningEvery` while it lasts, and its end
    /// at notice (`ListenerOutageLog`).
    public func listenForKeyChanges(
        heartbeat: Duration = .seconds(2), answerWithin: Duration? = nil, repeatWarningEvery: Duration = .seconds(60)
    ) async {
        let (channel, cache, logger, database) = (database.keyChannel, cache, logger, database)
        let outage = ListenerOutageLog(logger: logger, repeatEvery: repeatWarningEvery)
        let deadline = answerWithin ?? database.callTimeout
        while !Task.isCancelled {
            do {
                let connection = try await database.connect(within: deadline)
                // `listen` waits for LISTEN's answer without a deadline of its own: unanswered within
                // `deadline`, the connection is closed, which ends that wait.
                let watchdog = Task {
                    try await Task.sleep(for: deadline)
                    let closing: EventLoopFuture<Void> = connection.close()
                    closing.whenComplete { _ in withExtendedLifetime(connection) {} }
                }
                defer { watchdog.cancel() }
                do {
                    try await connection.listen(on: channel) { notifications in
                        watchdog.cancel()
                        // A query after LISTEN on the same connection: LISTEN is in force once it answers.
                        try await database.withDeadline("listen for key changes", timeout: deadline) {
                            for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                        }
                        // This connection also tells `kms restore` a server runs here. No deadline: it
                        // waits while a restore holds the lock, for as long as the restore takes.
                        try await database.holdRunningLock(on: connection)
                        cache.setListening(true)
                        outage.listening()
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for try await notification in notifications {
                                    cache.invalidate(keyId: notification.payload)
                                }
                            }
                            group.addTask {
                                while true {
                                    try await Task.sleep(for: heartbeat)
                                    try await database.withDeadline(
                                        "check the key-change connection", timeout: deadline
                                    ) {
                                        for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                                    }
                                }
                            }
                            // Either ends the other: a closed connection ends the notifications, a missing
                            // answer the heartbeat; the connection is closed below.
                            _ = try await group.next()
                            group.cancelAll()
                        }
                    }
                } catch {
                    if !Task.isCancelled {
                        outage.failed(
                            "lost the key-change notifications; reading keys from the database until they are back",
                            detail: PostgresDatabase.describe(error))
                    }
                }
                cache.setListening(false)
                // Not awaited: over TLS, closing a connection that went silent waits 5 s for the peer's
                // close_notify, and listening again need not wait for it.
                let closing: EventLoopFuture<Void> = connection.close()
                closing.whenComplete { _ in withExtendedLifetime(connection) {} }  // kept until closed
            } catch {
                cache.setListening(false)
                if !Task.isCancelled {
                    outage.failed(
                        "cannot listen for key changes; reading keys from the database",
                        detail: PostgresDatabase.describe(error))
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
        cache.setListening(false)
    }

    private func records(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> [KeyRecord] {
        var records: [KeyRecord] = []
        for (keyId, text, names) in try await rows(what, query) {
            records.append(try decode(text, keyId: keyId, aliases: names))
        }
        return records
    }

    /// The rows of a `selectRecord` query, not yet decoded: (key id, record, aliases).
    private func rows(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> [(String, String, [String])] {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            var rows: [(String, String, [String])] = []
            for try await row in try await client.query(query, logger: logger).decode((String, String, [String]).self) {
                rows.append(row)
            }
            return rows
        }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        var stored = record
        stored.revision = expectedRevision + 1
        let (client, logger, table, text, revision) = (database.client, logger, table, encode(stored), stored.revision)
        let (state, deletionDate, nextRotationAt) = (stored.state.rawValue, stored.deletionDate, stored.nextRotationAt)
        // This instance's own change is seen at once, also when its deadline passed while the UPDATE may
        // still commit (a review: the entry stayed until the notification); others' arrive by notification.
        let outcome: Result<Bool, KMSError>
        do {
            outcome = .success(
                try await database.withDeadline("update key") {
                    var updated = false
                    for try await _ in try await client.query(
                        """
                        UPDATE \(unescaped: table) SET revision = \(revision), record = \(text),
                          state = \(state), deletion_date = \(deletionDate), next_rotation_at = \(nextRotationAt)
                        WHERE key_id = \(record.keyId) AND revision = \(expectedRevision) RETURNING key_id
                        """, logger: logger)
                    {
                        updated = true
                    }
                    return updated
                })
        } catch {
            outcome = .failure(error)
        }
        cache.invalidate(keyId: record.keyId)
        guard try outcome.get() else { return .conflict }  // changed or deleted meanwhile: the caller reads it again
        // Committed: a failed read-back must not turn the change into an error (its caller would audit a
        // failure, and the scheduler skip its entry, for a change that happened). `stored` is what was written,
        // and stands when another instance changed the key again before the read-back.
        if let fresh = try? await key(id: record.keyId), fresh.revision == stored.revision { return .updated(fresh) }
        return .updated(stored)
    }

    public func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
        defer { cache.invalidate(keyId: keyId) }
        let (client, logger, table) = (database.client, logger, table)
        return try await database.withDeadline("delete key") {
            var deleted = false
            // Aliases go with it (ON DELETE CASCADE), in the same statement.
            for try await _ in try await client.query(
                """
                DELETE FROM \(unescaped: table) WHERE key_id = \(keyId) AND revision = \(expectedRevision)
                  AND state = 'pending_deletion' AND deletion_date <= \(now) RETURNING key_id
                """, logger: logger)
            {
                deleted = true
            }
            return deleted
        }
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        // Byte order, as the file store and the contract list keys, whatever the database's collation.
        try await records(
            "list keys",
            """
            \(unescaped: selectRecord) WHERE k.key_id COLLATE "C" > \(after ?? "")
            ORDER BY k.key_id COLLATE "C" LIMIT \(limit)
            """)
    }

    public func count() async throws(KMSError) -> Int {
        let (client, logger, table) = (database.client, logger, table)
        return try await database.withDeadline("count keys") {
            for try await count in try await client.query("SELECT count(*) FROM \(unescaped: table)", logger: logger)
                .decode(Int.self)
            {
                return count
            }
            return 0
        }
    }

    /// Due rows, skipping any another instance is writing this moment
    /// (`FOR UPDATE SKIP LOCKED`): the write that follows is conditional, so
    /// a row read here and changed since is simply not written.
    /// A row that does not decode is named as `.unreadable` (its columns say it is due). Such rows, and rows
    /// whose columns say due while their record does not, do not take the places of due keys, as on the file
    /// store: the next page is read, up to `duePages` pages a pass (a review of 2026-12-06: a hundred of them
    /// filled every pass's `LIMIT`, and no key after them in key order was deleted or rotated on its date).
    public func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey] {
        var due: [DueKey] = []
        var readable = 0
        var after = ""
        for _ in 0..<Self.duePages {
            let query: PostgresQuery = """
                \(unescaped: selectRecord) WHERE k.key_id IN (
                  SELECT key_id FROM \(unescaped: table)
                  WHERE ((state = 'pending_deletion' AND deletion_date <= \(now))
                     OR (state = 'enabled' AND next_rotation_at <= \(now)))
                    AND key_id > \(after)
                  ORDER BY key_id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                ORDER BY k.key_id
                """
            let page = try await rows("due keys", query)
            for (keyId, text, names) in page where readable < limit {
                do throws(KMSError) {
                    let record = try decode(text, keyId: keyId, aliases: names)
                    guard record.isDueForDeletion(at: now) || record.isDueForRotation(at: now) else { continue }
                    due.append(.readable(record))
                    readable += 1
                } catch {
                    due.append(.unreadable(keyId: keyId, error))
                }
            }
            // A short page means no more unlocked due rows (`SKIP LOCKED` under `LIMIT` goes on past locked
            // ones): the pass ends.
            guard readable < limit, page.count == limit, let last = page.last?.0 else { break }
            after = last
        }
        return due
    }

    /// How many pages of due rows one pass reads at most, past rows that cannot be run.
    static let duePages = 10

    /// One statement for every key: an upsert that adds, stopping at `Int64.max`. The keys' rows are
    /// locked for key share first, so a key deleted meanwhile is skipped rather than breaking the
    /// foreign key, and every instance locks in (key, version) order, so two passes cannot deadlock.
    public func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]] {
        var (keyIds, versions, numbers): ([String], [Int64], [Int64]) = ([], [], [])
        // In (key, version) order, on every instance: two batches then take their row locks in one order.
        for (keyId, byVersion) in counts.sorted(by: { $0.key < $1.key }) {
            for (version, count) in byVersion.sorted(by: { $0.key < $1.key }) {
                keyIds.append(keyId)
                versions.append(Int64(version))
                numbers.append(Int64(min(count, UInt64(Int64.max))))
            }
        }
        guard !keyIds.isEmpty else { return [:] }
        let (ids, numbered, added) = (keyIds, versions, numbers)
        let (client, logger, table, usage) = (database.client, logger, table, database.table("key_usage"))
        let rows: [(String, Int64, Int64)] = try await database.withDeadline("add encryptions") {
            var rows: [(String, Int64, Int64)] = []
            let query: PostgresQuery = """
                WITH live AS (
                  SELECT key_id FROM \(unescaped: table) WHERE key_id = ANY(\(ids)::text[])
                  ORDER BY key_id COLLATE "C" FOR KEY SHARE)
                INSERT INTO \(unescaped: usage) AS u (key_id, version, encryptions)
                SELECT c.key_id, c.version, c.n FROM unnest(\(ids)::text[], \(numbered)::int8[], \(added)::int8[])
                  WITH ORDINALITY AS c(key_id, version, n, position)
                JOIN live ON live.key_id = c.key_id
                ORDER BY c.position
                ON CONFLICT (key_id, version) DO UPDATE SET encryptions =
                  CASE WHEN u.encryptions > 9223372036854775807 - excluded.encryptions THEN 9223372036854775807
                       ELSE u.encryptions + excluded.encryptions END
                RETURNING key_id, version, encryptions
                """
            for try await row in try await client.query(query, logger: logger).decode((String, Int64, Int64).self) {
                rows.append(row)
            }
            return rows
        }
        var totals: [String: [Int: UInt64]] = [:]
        for (keyId, version, total) in rows { totals[keyId, default: [:]][Int(version)] = UInt64(max(0, total)) }
        return totals
    }

    // MARK: Aliases

    private static let aliasColumns = "alias, key_id, created_at, updated_at"

    private func aliasRows(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> [AliasRecord] {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            var rows: [AliasRecord] = []
            for try await (alias, keyId, created, updated) in try await client.query(query, logger: logger).decode(
                (String, String, Date, Date).self)
            {
                rows.append(AliasRecord(alias: alias, keyId: keyId, createdAt: created, updatedAt: updated))
            }
            return rows
        }
    }

    public func alias(_ name: String) async throws(KMSError) -> AliasRecord? {
        try await aliasRows(
            "read alias", "SELECT \(unescaped: Self.aliasColumns) FROM \(unescaped: aliases) WHERE alias = \(name)"
        ).first
    }

    public func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError) {
        defer { cache.invalidate(keyId: record.keyId) }
        let (client, logger, aliases, table) = (database.client, logger, aliases, table)
        let claimed = try await database.withDeadline("create alias") { () async throws -> Bool in
            var claimed = false
            do {
                // The key's row is locked and its state judged in the same statement as the insert: a
                // deletion scheduled meanwhile either came first (no row here) or waits for this one.
                for try await _ in try await client.query(
                    """
                    WITH target AS (
                      SELECT key_id FROM \(unescaped: table)
                      WHERE key_id = \(record.keyId) AND (state <> 'pending_deletion' OR \(copying)) FOR SHARE)
                    INSERT INTO \(unescaped: aliases) (\(unescaped: Self.aliasColumns))
                    SELECT \(record.alias), key_id, \(record.createdAt), \(record.updatedAt) FROM target
                    ON CONFLICT DO NOTHING RETURNING alias
                    """, logger: logger)
                {
                    claimed = true
                }
            } catch  where PostgresDatabase.sqlState(error) == "23503" {
                throw KMSError.keyDeletedMeanwhile  // the key was deleted since the request looked it up
            }
            return claimed
        }
        guard claimed else {
            try await refuseAliasTarget(record.keyId, copying: copying)
            throw KMSError.aliasInUse(record.alias)
        }
    }

    /// After an alias write that changed nothing: throws why `keyId` could not take it, if it is the
    /// key (gone, or pending deletion); returns when the key could, so the alias was the reason.
    private func refuseAliasTarget(_ keyId: String, copying: Bool = false) async throws(KMSError) {
        if let refusal = KMSError.refusalToTakeAlias(try await freshKey(id: keyId), copying: copying) { throw refusal }
    }

    public func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date)
        async throws(KMSError) -> Bool
    {
        defer {
            cache.invalidate(keyId: expectedKeyId)
            cache.invalidate(keyId: keyId)
        }
        // As in `createAlias`: the target's state is judged, under a lock, by the statement that writes.
        let moved = try await changed(
            "move alias",
            """
            WITH target AS (
              SELECT key_id FROM \(unescaped: table) WHERE key_id = \(keyId) AND state <> 'pending_deletion' FOR SHARE)
            UPDATE \(unescaped: aliases) SET key_id = target.key_id, updated_at = \(now) FROM target
            WHERE alias = \(alias) AND \(unescaped: aliases).key_id = \(expectedKeyId) RETURNING alias
            """)
        if !moved { try await refuseAliasTarget(keyId) }
        return moved
    }

    public func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool {
        defer { cache.invalidate(keyId: expectedKeyId) }
        return try await changed(
            "delete alias",
            "DELETE FROM \(unescaped: aliases) WHERE alias = \(alias) AND key_id = \(expectedKeyId) RETURNING alias")
    }

    private func changed(_ what: String, _ query: PostgresQuery) async throws(KMSError) -> Bool {
        let (client, logger) = (database.client, logger)
        return try await database.withDeadline(what) {
            do {
                var changed = false
                for try await _ in try await client.query(query, logger: logger) { changed = true }
                return changed
            } catch  where PostgresDatabase.sqlState(error) == "23503" {
                // A move onto a key deleted meanwhile breaks the foreign key: nothing was written.
                return false
            }
        }
    }

    public func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord] {
        let query: PostgresQuery
        if let keyId {
            query = """
                SELECT \(unescaped: Self.aliasColumns) FROM \(unescaped: aliases)
                WHERE alias > \(after ?? "") AND key_id = \(keyId) ORDER BY alias LIMIT \(limit)
                """
        } else {
            query = """
                SELECT \(unescaped: Self.aliasColumns) FROM \(unescaped: aliases)
                WHERE alias > \(after ?? "") ORDER BY alias LIMIT \(limit)
                """
        }
        return try await aliasRows("list aliases", query)
    }
}
