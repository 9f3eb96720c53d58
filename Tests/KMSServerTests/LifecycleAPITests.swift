import Foundation
import HummingbirdTesting
import KMSClient
import KMSCore
import KMSProtocol
import KMSTestSupport
import Synchronization
import Testing

/// lifecycle-v1 through the sealed channel, on the file store and (when
/// `KMS_TEST_POSTGRES_URL` is set) PostgreSQL: state, scheduled deletion and
/// rotation under a moved clock, aliases, description and tags.
@Suite struct LifecycleAPITests {
    static var stores: [String] { PostgresTestDatabase.url == nil ? ["file"] : ["file", "postgres"] }

    /// A server on `store`; PostgreSQL servers given the same `prefix` share their keys.
    static func server(_ store: String, prefix: String = PostgresTestDatabase.newPrefix()) throws -> TestServer {
        var environment = ["KMS_KEY_GRACE_MS": "60000"]
        if store == "postgres" {
            environment["KMS_STORE"] = "postgres"
            environment["KMS_DATABASE_URL"] = PostgresTestDatabase.url ?? ""
            environment["KMS_DATABASE_TIMEOUT_MS"] = PostgresTestDatabase.serverTimeoutMs
            environment["KMS_DATABASE_PREFIX"] = prefix
        }
        var server = try TestServer(environment)
        server.dependencies.schedulerInterval = .milliseconds(20)
        return server
    }

    static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// Polls until `condition` holds (the scheduler runs every 20 ms); false after 10 s.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// A new session: moving the clock by days ends the old one.
    static func session(_ client: any TestClientProtocol) async throws -> WireSession {
        let session = WireSession(client: client)
        try await session.establish()
        return session
    }

    /// A new key named `alias`, scheduled for deletion in 7 days; its keyId.
    static func keyPendingDeletion(_ session: WireSession, alias: String) async throws -> String {
        let keyId = try #require(
            try await session.call(.post, "/keys/generate", #"{"alias":"\#(alias)"}"#).json["keyId"] as? String)
        #expect(
            try await session.call(.post, "/keys/\(alias)/schedule-deletion", #"{"pendingWindowDays":7}"#).status == 200
        )
        return keyId
    }

    /// The lines of `log` whose entry is of `type`.
    static func entries(_ type: String, in log: URL) throws -> [Substring] {
        try String(contentsOf: log, encoding: .utf8).split(separator: "\n").filter {
            $0.contains("\"type\":\"\(type)\"")
        }
    }

    /// Waits (up to 10 s) until `logs` hold `count` entries of `type` with `outcome`: the scheduler writes its
    /// success after the change a test sees, and a loaded disk's fsync can outlast a fixed pause.
    static func waitForEntries(_ type: String, outcome: String, count: Int, in logs: [URL]) async throws {
        for _ in 0..<500 {
            let found = try logs.flatMap { try entries(type, in: $0) }.filter {
                $0.contains("\"outcome\":\"\(outcome)\"")
            }
            if found.count >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func count(_ type: String, in log: URL) throws -> Int {
        try String(contentsOf: log, encoding: .utf8).components(separatedBy: "\"type\":\"\(type)\"").count - 1
    }

    @Test(arguments: stores)
    func disableRefusesEveryOperationAndEnableRestores(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let generated = try await session.call(
                .post, "/keys/generate", #"{"alias":"photos","description":"phone\tlibrary","tags":{"owner":"ana"}}"#)
            #expect(generated.status == 200)
            let encrypted = try await session.call(
                .post, "/crypto/encrypt", #"{"keyId":"photos","plaintext":"\#(Self.b64("hello"))"}"#)
            let ciphertext = try #require(encrypted.json["ciphertext"] as? String)
            let shown = try await session.call(.get, "/keys/photos")
            #expect(
                shown.json["state"] as? String == "enabled" && shown.json["description"] as? String == "phone\tlibrary")
            #expect(shown.json["tags"] as? [String: String] == ["owner": "ana"])
            #expect(shown.json["aliases"] as? [String] == ["photos"] && shown.json["alias"] as? String == "photos")
            #expect(shown.json.keys.contains("rotationPeriodDays") && shown.json["rotationPeriodDays"] is NSNull)

            let disabled = try await session.call(.post, "/keys/photos/disable", "{}")
            #expect(disabled.status == 200 && disabled.json["state"] as? String == "disabled")
            let calls: [(String, String)] = [
                ("/crypto/encrypt", #"{"keyId":"photos","plaintext":"\#(Self.b64("x"))"}"#),
                ("/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#),
                ("/crypto/rewrap", #"{"ciphertext":"\#(ciphertext)"}"#),
                ("/crypto/datakey", #"{"keyId":"photos"}"#),
                ("/keys/rotate", #"{"keyId":"photos"}"#),
                ("/keys/photos/rotation", #"{"periodDays":30}"#),
            ]
            for (path, body) in calls {
                let refused = try await session.call(.post, path, body)
                #expect(refused.status == 409 && refused.errorCode == "key_disabled", "\(path)")
            }
            #expect(try await session.call(.get, "/keys/photos").status == 200)
            #expect(try await session.call(.post, "/keys/photos/disable", "{}").status == 200)  // a no-op
            #expect(try await session.call(.post, "/keys/photos/rotation", #"{"periodDays":null}"#).status == 200)
            let enabled = try await session.call(.post, "/keys/photos/enable", "{}")
            #expect(enabled.status == 200 && enabled.json["state"] as? String == "enabled")
            let decrypted = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#)
            #expect(decrypted.status == 200 && decrypted.json["plaintext"] as? String == Self.b64("hello"))
            // Two intents and two results: the repeated disable left no entry.
            #expect(try Self.count("key.disable", in: server.config.auditLog) == 2)
            #expect(try Self.count("key.enable", in: server.config.auditLog) == 2)
            // `key` as asked, the alias here (docs/audit.md), beside the keyId.
            let disables = try String(contentsOf: server.config.auditLog, encoding: .utf8)
                .split(separator: "\n").filter { $0.contains(#""type":"key.disable""#) }
            #expect(disables.count == 2 && disables.allSatisfy { $0.contains(#""key":"photos""#) }, "\(disables)")
            // The keyId too, in the intent as well as the result: an alias may move later (a review).
            #expect(disables.allSatisfy { $0.contains(#""keyId":"key_"#) }, "\(disables)")

            let missing = try await session.call(.post, "/keys/nothing/disable", "{}")
            #expect(missing.status == 404 && missing.errorCode == "key_not_found")
            let unknownField = try await session.call(.post, "/keys/photos/enable", #"{"now":true}"#)
            #expect(unknownField.status == 400 && unknownField.errorField == "now")
        }
    }

    @Test(arguments: stores)
    func scheduledDeletionCancelsToDisabledThenDeletesOnce(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let first = try await Self.session(client)
            let keyId = try #require(
                try await first.call(.post, "/keys/generate", #"{"alias":"old"}"#).json["keyId"] as? String)
            let ciphertext = try #require(
                try await first.call(.post, "/crypto/encrypt", #"{"keyId":"old","plaintext":"\#(Self.b64("x"))"}"#)
                    .json["ciphertext"] as? String)
            for days in ["6", "31", "\"7\""] {
                let refused = try await first.call(
                    .post, "/keys/old/schedule-deletion", #"{"pendingWindowDays":\#(days)}"#)
                #expect(refused.status == 400 && refused.errorField == "pendingWindowDays", "\(days)")
            }
            let pending = try await first.call(.post, "/keys/old/schedule-deletion", "{}")
            #expect(
                pending.json["state"] as? String == "pending_deletion"
                    && pending.json["pendingWindowDays"] as? Int == 30)
            #expect(pending.json["deletionDate"] is String)
            for path in ["enable", "disable", "schedule-deletion", "description", "tags"] {
                let body = path == "description" ? #"{"description":"x"}"# : "{}"
                let refused = try await first.call(.post, "/keys/old/\(path)", body)
                #expect(refused.status == 409 && refused.errorCode == "key_pending_deletion", "\(path)")
            }
            let decrypt = try await first.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#)
            #expect(decrypt.errorCode == "key_pending_deletion")
            let listed = try await first.call(.get, "/keys")
            #expect((listed.json["keys"] as? [[String: Any]])?.count == 1)

            let cancelled = try await first.call(.post, "/keys/old/cancel-deletion", "{}")
            #expect(cancelled.json["state"] as? String == "disabled" && cancelled.json["deletionDate"] == nil)
            #expect(cancelled.json["pendingWindowDays"] == nil)
            let again = try await first.call(.post, "/keys/old/cancel-deletion", "{}")
            #expect(again.status == 409 && again.errorCode == "key_not_pending_deletion")

            #expect(
                try await first.call(.post, "/keys/old/schedule-deletion", #"{"pendingWindowDays":7}"#).status == 200)
            server.clock.advance(milliseconds: 7 * 86_400_000 - 1000)
            try await Task.sleep(for: .milliseconds(200))
            var session = try await Self.session(client)
            #expect(try await session.call(.get, "/keys/old").status == 200)  // not yet due
            server.clock.advance(milliseconds: 1000)
            session = try await Self.session(client)
            let gone = try await Self.eventually { try await session.call(.get, "/keys/\(keyId)").status == 404 }
            #expect(gone)
            let afterwards = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#)
            #expect(afterwards.status == 404 && afterwards.errorCode == "key_not_found")
            #expect(try await session.call(.get, "/keys/old").errorCode == "key_not_found")
            let alias = try await session.call(.post, "/aliases/old", #"{"keyId":"\#(keyId)"}"#)
            #expect(alias.status == 404 && alias.errorCode == "alias_not_found")
            // A durable intent, then the one success (a review: killed between the deletion and its entry,
            // a server left no trace of it). The success is written after the deletion: waited for, as a
            // loaded disk's fsync can take longer than a fixed pause.
            try await Self.waitForEntries("key.delete", outcome: "success", count: 1, in: [server.config.auditLog])
            let deletes = try Self.entries("key.delete", in: server.config.auditLog)
            #expect(deletes.count == 2, "\(deletes)")
            #expect(deletes.first?.contains("\"outcome\":\"intent\"") == true, "\(deletes)")
            #expect(deletes.last?.contains("\"outcome\":\"success\"") == true, "\(deletes)")
            #expect(deletes.allSatisfy { $0.contains("\"client\":\"scheduler\"") && $0.contains(keyId) })
            // Both name the aliases the deletion removed (an audit review: only the keyId was named).
            #expect(deletes.allSatisfy { $0.contains(#""aliases":"old""#) }, "\(deletes)")
        }
    }

    /// The scheduler writes a durable intent before it deletes or rotates: while the audit log cannot
    /// be written, a due key waits, and the pass after the log recovers deletes it.
    @Test func aDueDeletionWaitsForTheAuditLog() async throws {
        var server = try Self.server("file")
        let writer = try FlakyAuditWriter(url: server.folder.appendingPathComponent("audit.log"))
        server.dependencies.auditWriter = writer
        let clock = server.clock
        try await server.run { client in
            let first = try await Self.session(client)
            let keyId = try await Self.keyPendingDeletion(first, alias: "old")
            writer.failing.withLock { $0 = true }
            clock.advance(milliseconds: 7 * 86_400_000 + 1000)
            try await Task.sleep(for: .milliseconds(300))  // fifteen passes
            let session = try await Self.session(client)
            #expect(try await session.call(.get, "/keys/\(keyId)").json["state"] as? String == "pending_deletion")
            writer.failing.withLock { $0 = false }
            #expect(try await Self.eventually { try await session.call(.get, "/keys/\(keyId)").status == 404 })
            try await Self.waitForEntries("key.delete", outcome: "success", count: 1, in: [writer.base.url])
            let deletes = try Self.entries("key.delete", in: writer.base.url)
            #expect(deletes.count == 2 && deletes.first?.contains("\"outcome\":\"intent\"") == true, "\(deletes)")
        }
    }

    /// Concurrent changes of one alias (a review ran them on two instances): two moves to one key both
    /// answer 200 (the second is rule 9.3's no-op), a delete racing a move deletes the alias wherever it
    /// points, and the move answers 200 or `404 alias_not_found`; none answers `503` (it did, when the
    /// conditional write found the alias changed since its read).
    @Test(arguments: stores)
    func racingAliasChangesAnswerAsTheContractSays(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let base = HTTPTransport(baseURL: "http://127.0.0.1:\(client.port ?? 0)")
            let (a, b) = (
                try KMSClient(.init(baseURL: base.baseURL, insecureTrustAnyServer: true)),
                try KMSClient(.init(baseURL: base.baseURL, insecureTrustAnyServer: true))
            )
            let one = try await a.generateKey().keyId
            let two = try await b.generateKey().keyId
            for round in 0..<12 {
                _ = try await a.createAlias("moved-\(round)", key: one)
                async let first = a.moveAlias("moved-\(round)", to: two)
                async let second = b.moveAlias("moved-\(round)", to: two)
                let (movedFirst, movedSecond) = try await (first, second)
                #expect(movedFirst.keyId == two && movedSecond.keyId == two)

                _ = try await a.createAlias("deleted-\(round)", key: one)
                async let deletion: Void = a.deleteAlias("deleted-\(round)")
                async let move = Self.code { _ = try await b.moveAlias("deleted-\(round)", to: two) }
                try await deletion
                let code = await move
                #expect(code == "200" || code == "alias_not_found", "\(code)")
                #expect(try await a.listAliases(key: two).aliases.allSatisfy { !$0.alias.hasPrefix("deleted-") })
            }
        }
    }

    /// "200", or the server's error code (else the error) of what `call` sent.
    static func code(_ call: () async throws -> Void) async -> String {
        do {
            try await call()
            return "200"
        } catch {
            return (error as? KMSClientError)?.code ?? "\(error)"
        }
    }

    /// A host whose clock runs ahead of the database's (the reference) deletes nothing on a date:
    /// the deletion would be early, for every instance and irreversible. Once the clocks agree the
    /// pass deletes it. (The reference is injected, so this runs on the file store too.)
    @Test func aHostClockAheadOfTheReferenceHoldsDeletions() async throws {
        var server = try Self.server("file")
        // Scheduled while the clocks agree (a deletion is not scheduled while they differ: the test below).
        let hostAhead = Mutex<TimeInterval>(0)
        let checks = Mutex(0)
        server.dependencies.referenceClock = {
            checks.withLock { $0 += 1 }
            return Date().addingTimeInterval(-hostAhead.withLock { $0 })
        }
        let (clock, auditLog) = (server.clock, server.config.auditLog)
        try await server.run { client in
            let first = try await Self.session(client)
            let keyId = try await Self.keyPendingDeletion(first, alias: "held")
            hostAhead.withLock { $0 = 3_600 }
            clock.advance(milliseconds: 8 * 86_400_000)
            // Three passes that found the key due (the clock moved before they began) and held it.
            let before = checks.withLock { $0 }
            #expect(try await Self.eventually { checks.withLock { $0 } >= before + 3 })
            let session = try await Self.session(client)
            let held = try await session.call(.get, "/keys/\(keyId)")
            #expect(held.status == 200 && held.json["state"] as? String == "pending_deletion")
            #expect(try Self.count("key.delete", in: auditLog) == 0)
            hostAhead.withLock { $0 = 30 }  // within the limit
            #expect(try await Self.eventually { try await session.call(.get, "/keys/\(keyId)").status == 404 })
        }
    }

    /// A host whose clock is wrong writes no date: a deletion scheduled while it ran 8 days behind was
    /// dated a day in the past and the key deleted at the next pass once the clock was put right, and a
    /// rotation made so retired the version before it at once (a review). Changes that write a date are
    /// `503 server_busy` until the clocks agree; the others, and every use of a key, go on.
    @Test func aHostClockOffTheReferenceWritesNoDate() async throws {
        var server = try Self.server("file")
        let hostAhead = Mutex<TimeInterval>(-8 * 86_400)
        server.dependencies.referenceClock = { Date().addingTimeInterval(-hostAhead.withLock { $0 }) }
        let auditLog = server.config.auditLog
        try await server.run { client in
            let session = try await Self.session(client)
            let keyId = try #require(
                try await session.call(.post, "/keys/generate", #"{"alias":"dated"}"#).json["keyId"] as? String)
            for (path, body) in [
                ("/keys/dated/schedule-deletion", #"{"pendingWindowDays":7}"#), ("/keys/rotate", #"{"keyId":"dated"}"#),
                ("/keys/dated/rotation", #"{"periodDays":30}"#),
            ] {
                let held = try await session.call(.post, path, body)
                #expect(held.status == 503 && held.errorCode == "server_busy", "\(path): \(held.status)")
                #expect(((held.json["error"] as? [String: Any])?["message"] as? String)?.contains("set a date") == true)
            }
            // Refused before anything is recorded: no intent whose failure would read as "may have happened"
            // (the second review).
            for type in ["key.schedule-deletion", "key.rotate", "key.rotation-schedule"] {
                #expect(try Self.count(type, in: auditLog) == 0, "\(type)")
            }
            let encrypted = try await session.call(.post, "/crypto/encrypt", #"{"keyId":"dated","plaintext":""}"#)
            #expect(encrypted.status == 200)
            // A key that does not exist is a 404 before the clock's 503; a disabled key's rotation is refused
            // for its state, with no intent either (a review: it wrote an intent and a failure each time).
            let missing = try await session.call(.post, "/keys/rotate", #"{"keyId":"no-such-alias"}"#)
            #expect(missing.status == 404 && missing.errorCode == "key_not_found")
            #expect(try await session.call(.post, "/keys/dated/disable", "{}").status == 200)
            let disabled = try await session.call(.post, "/keys/rotate", #"{"keyId":"dated"}"#)
            #expect(disabled.errorCode == "key_disabled", "\(disabled.status)")
            #expect(try Self.count("key.rotate", in: auditLog) == 0)
            #expect(try await session.call(.get, "/keys/\(keyId)").json["activeVersion"] as? Int == 1)
            hostAhead.withLock { $0 = 30 }  // within the limit
            #expect(try await session.call(.post, "/keys/dated/schedule-deletion", "{}").status == 200)
        }
    }

    /// `KMS_MAX_KEYS`: a generate past it is `409 limit_reached`, refused before its intent is recorded
    /// (a client at the limit retrying wrote an intent and a failure each time: the second review).
    @Test func aGeneratePastKMSMaxKeysIsRefusedBeforeItsIntent() async throws {
        var server = try Self.server("file")
        server.config.maxKeys = 1
        let auditLog = server.config.auditLog
        try await server.run { client in
            let session = try await Self.session(client)
            #expect(try await session.call(.post, "/keys/generate", "{}").status == 200)
            let before = try Self.count("key.generate", in: auditLog)
            let refused = try await session.call(.post, "/keys/generate", #"{"alias":"two"}"#)
            #expect(refused.status == 409 && refused.errorCode == "limit_reached")
            #expect(try Self.count("key.generate", in: auditLog) == before)
        }
    }

    @Test(arguments: stores)
    func rotationScheduleRotatesOncePerPeriod(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let first = try await Self.session(client)
            _ = try await first.call(.post, "/keys/generate", #"{"alias":"auto"}"#)
            for days in ["0", "3651", "\"90\""] {
                let refused = try await first.call(.post, "/keys/auto/rotation", #"{"periodDays":\#(days)}"#)
                #expect(refused.status == 400 && refused.errorField == "periodDays", "\(days)")
            }
            #expect(try await first.call(.post, "/keys/auto/rotation", "{}").errorField == "periodDays")
            let set = try await first.call(.post, "/keys/auto/rotation", #"{"periodDays":2}"#)
            #expect(set.json["rotationPeriodDays"] as? Int == 2 && set.json["nextRotationAt"] is String)
            server.clock.advance(milliseconds: 2 * 86_400_000)
            var session = try await Self.session(client)
            #expect(
                try await Self.eventually {
                    try await session.call(.get, "/keys/auto").json["activeVersion"] as? Int == 2
                })
            // Five missed periods collapse into one rotation.
            server.clock.advance(milliseconds: 10 * 86_400_000)
            session = try await Self.session(client)
            #expect(
                try await Self.eventually {
                    try await session.call(.get, "/keys/auto").json["activeVersion"] as? Int == 3
                })
            try await Task.sleep(for: .milliseconds(200))
            let shown = try await session.call(.get, "/keys/auto")
            #expect(shown.json["activeVersion"] as? Int == 3)
            let next = try #require((shown.json["nextRotationAt"] as? String).flatMap(Timestamp.parse))
            #expect(abs(next.timeIntervalSince(server.clock.now()) - 2 * 86_400) < 0.01)
            let off = try await session.call(.post, "/keys/auto/rotation", #"{"periodDays":null}"#)
            #expect(off.json["rotationPeriodDays"] is NSNull && off.json["nextRotationAt"] == nil)
        }
    }

    /// Two instances on one database, one clock: each period rotates once,
    /// and one instance logs it.
    @Test(.enabled(if: PostgresTestDatabase.url != nil, "KMS_TEST_POSTGRES_URL is not set"))
    func twoInstancesRotateOncePerPeriod() async throws {
        let prefix = PostgresTestDatabase.newPrefix()
        let first = try Self.server("postgres", prefix: prefix)
        var twin = try Self.server("postgres", prefix: prefix)
        twin.dependencies.clock = first.clock
        let second = twin
        try await first.run { clientA in
            try await second.run { _ in
                let setup = try await Self.session(clientA)
                _ = try await setup.call(.post, "/keys/generate", #"{"alias":"shared"}"#)
                _ = try await setup.call(.post, "/keys/shared/rotation", #"{"periodDays":1}"#)
                for period in 1...3 {
                    first.clock.advance(milliseconds: 86_400_000)
                    let session = try await Self.session(clientA)
                    #expect(
                        try await Self.eventually {
                            try await session.call(.get, "/keys/shared").json["activeVersion"] as? Int == period + 1
                        })
                    try await Task.sleep(for: .milliseconds(150))
                    #expect(try await session.call(.get, "/keys/shared").json["activeVersion"] as? Int == period + 1)
                }
                // One success per period; the losing instance, when it tried, logged its intent's failure.
                // The last success is written after its rotation: waited for.
                try await Self.waitForEntries(
                    "key.rotate", outcome: "success", count: 3,
                    in: [
                        first.config.auditLog, second.config.auditLog,
                    ])
                let entries =
                    try Self.entries("key.rotate", in: first.config.auditLog)
                    + Self.entries("key.rotate", in: second.config.auditLog)
                #expect(entries.filter { $0.contains("\"outcome\":\"success\"") }.count == 3, "\(entries)")
                #expect(entries.filter { $0.contains("\"outcome\":\"intent\"") }.count >= 3, "\(entries)")
            }
        }
    }

    @Test(arguments: stores)
    func aliasesCreateMoveListAndDelete(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let one = try #require(
                try await session.call(.post, "/keys/generate", #"{"alias":"one"}"#).json["keyId"] as? String)
            let two = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            let created = try await session.call(.post, "/aliases", #"{"alias":"photos","keyId":"one"}"#)
            #expect(created.status == 200 && created.json["keyId"] as? String == one)
            #expect(created.json["createdAt"] is String && created.json["updatedAt"] is String)
            let taken = try await session.call(.post, "/aliases", #"{"alias":"photos","keyId":"\#(two)"}"#)
            #expect(taken.status == 409 && taken.errorCode == "alias_in_use")
            // A UUID's form is a key's AWS KeyId (a review finding: the native door read it as an alias).
            let uuidShaped = ["d73fc878-99c4-444b-af70-866051e6104a", "D73FC878-99C4-444B-AF70-866051E6104A"]
            for bad in ["key_x", "generate", "-x", ""] + uuidShaped {
                let refused = try await session.call(.post, "/aliases", #"{"alias":"\#(bad)","keyId":"one"}"#)
                #expect(refused.status == 400 && refused.errorField == "alias", "\(bad)")
            }
            let generated = try await session.call(.post, "/keys/generate", #"{"alias":"\#(uuidShaped[0])"}"#)
            #expect(generated.status == 400 && generated.errorField == "alias")
            // Nor moved, were one made before the rule: refused before the alias is looked up; deleting still works.
            let moveUUID = try await session.call(.post, "/aliases/\(uuidShaped[0])", #"{"keyId":"one"}"#)
            #expect(moveUUID.status == 400 && moveUUID.errorField == "alias", "\(moveUUID.json)")
            #expect(try await session.call(.delete, "/aliases/\(uuidShaped[0])").errorCode == "alias_not_found")
            let nearly = try await session.call(
                .post, "/aliases", #"{"alias":"d73fc878-99c4-444b-af70-866051e6104g","keyId":"one"}"#)
            #expect(nearly.status == 200, "not hexadecimal: an alias like any other")
            #expect(try await session.call(.delete, "/aliases/d73fc878-99c4-444b-af70-866051e6104g").status == 200)
            let noKey = try await session.call(.post, "/aliases", #"{"alias":"other","keyId":"nothing"}"#)
            #expect(noKey.status == 404 && noKey.errorCode == "key_not_found")
            let shown = try await session.call(.get, "/keys/photos")
            #expect(shown.json["aliases"] as? [String] == ["one", "photos"] && shown.json["alias"] as? String == "one")

            // A ciphertext made through an alias follows the key, not the alias.
            let sealed = try #require(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"photos","plaintext":"\#(Self.b64("p"))"}"#)
                    .json["ciphertext"] as? String)
            let moved = try await session.call(.post, "/aliases/photos", #"{"keyId":"\#(two)"}"#)
            #expect(moved.status == 200 && moved.json["keyId"] as? String == two)
            #expect(try await session.call(.post, "/aliases/photos", #"{"keyId":"\#(two)"}"#).status == 200)  // no-op
            #expect(try await session.call(.get, "/keys/photos").json["keyId"] as? String == two)
            #expect(try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(sealed)"}"#).status == 200)
            let missing = try await session.call(.post, "/aliases/nothing", #"{"keyId":"one"}"#)
            #expect(missing.status == 404 && missing.errorCode == "alias_not_found")

            let all = try await session.call(.get, "/aliases")
            #expect(
                (all.json["aliases"] as? [[String: Any]])?.compactMap { $0["alias"] as? String } == ["one", "photos"])
            let page = try await session.call(.get, "/aliases?limit=1")
            #expect(page.json["next"] as? String == "one")
            let ofOne = try await session.call(.get, "/aliases?keyId=\(one)")
            #expect((ofOne.json["aliases"] as? [[String: Any]])?.count == 1)
            let ofNothing = try await session.call(.get, "/aliases?keyId=nothing")
            #expect(ofNothing.status == 200 && (ofNothing.json["aliases"] as? [Any])?.isEmpty == true)
            // An unknown parameter's refusal names all three the route takes (a probe: it named two).
            let unknown = try await session.call(.get, "/aliases?x=1")
            #expect(
                unknown.errorCode == "invalid_request"
                    && ((unknown.json["error"] as? [String: Any])?["message"] as? String)?.hasSuffix(
                        "use limit, after and keyId") == true,
                "\(unknown.json)")

            _ = try await session.call(.post, "/keys/\(two)/schedule-deletion", "{}")
            let ontoPending = try await session.call(.post, "/aliases", #"{"alias":"late","keyId":"\#(two)"}"#)
            #expect(ontoPending.status == 409 && ontoPending.errorCode == "key_pending_deletion")

            let deleted = try await session.call(.delete, "/aliases/photos")
            #expect(deleted.status == 200)
            #expect(try await session.call(.delete, "/aliases/photos").errorCode == "alias_not_found")
            #expect(try await session.call(.get, "/keys/photos").errorCode == "key_not_found")
            // Two creates and one refused: an intent and an outcome each.
            #expect(try Self.count("alias.create", in: server.config.auditLog) == 6)
        }
    }

    @Test(arguments: stores)
    func descriptionAndTags(_ store: String) async throws {
        let server = try Self.server(store)
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            _ = try await session.call(.post, "/keys/generate", #"{"alias":"labelled"}"#)
            let described = try await session.call(
                .post, "/keys/labelled/description", #"{"description":"backups\nof 2026"}"#)
            #expect(described.json["description"] as? String == "backups\nof 2026")
            let bell = try await session.call(.post, "/keys/labelled/description", #"{"description":"a\u0007b"}"#)
            #expect(bell.status == 400 && bell.errorField == "description")
            let long = String(repeating: "é", count: 4097)
            #expect(
                try await session.call(.post, "/keys/labelled/description", #"{"description":"\#(long)"}"#).errorField
                    == "description")

            let tagged = try await session.call(.post, "/keys/labelled/tags", #"{"set":{"a":"1","b":"2"}}"#)
            #expect(tagged.json["tags"] as? [String: String] == ["a": "1", "b": "2"])
            let changed = try await session.call(
                .post, "/keys/labelled/tags", #"{"set":{"a":"9"},"remove":["b","absent"]}"#)
            #expect(changed.json["tags"] as? [String: String] == ["a": "9"])
            #expect(try await session.call(.post, "/keys/labelled/tags", "{}").status == 200)
            let refusals: [(String, String)] = [
                (#"{"set":{"aws:x":"1"}}"#, "set.aws:x"), (#"{"set":{"AWS:x":"1"}}"#, "set.AWS:x"),
                // A combining mark or a joiner after the colon (one character with it) is still aws: (a review).
                (#"{"set":{"aws:\u0301env":"1"}}"#, "set.aws:\u{301}env"),
                (#"{"set":{"AwS:\u200Dx":"1"}}"#, "set.AwS:\u{200D}x"),
                (#"{"set":{"":"1"}}"#, "set."), (#"{"remove":["a\u0001"]}"#, "remove[0]"),
                (#"{"set":{"a":"1"},"remove":["a"]}"#, "set"),
                (#"{"set":{"k":"\#(String(repeating: "v", count: 257))"}}"#, "set.k"),
            ]
            for (body, field) in refusals {
                let refused = try await session.call(.post, "/keys/labelled/tags", body)
                #expect(refused.status == 400 && refused.errorField == field, "\(body)")
            }
            // A key that reads as a stored one but is other bytes (U+212A for `K`) is refused, set or removed:
            // it kept the stored key's bytes with the new value, or removed the other key (a review).
            _ = try await session.call(.post, "/keys/labelled/tags", #"{"set":{"K":"1"}}"#)
            for (body, field) in [
                (#"{"set":{"\u212A":"2"}}"#, "set.\u{212A}"), (#"{"remove":["\u212A"]}"#, "remove[0]"),
            ] {
                let refused = try await session.call(.post, "/keys/labelled/tags", body)
                #expect(refused.status == 400 && refused.errorField == field, "\(body)")
            }
            let kept = try await session.call(.get, "/keys/labelled")
            #expect((kept.json["tags"] as? [String: String])?.first { $0.key.bytesEqual("K") }?.value == "1")
            // A value or description that reads the same but is other bytes is a change, stored (a review: it
            // read as no change and the old bytes stayed).
            _ = try await session.call(.post, "/keys/labelled/tags", #"{"set":{"K":"K"}}"#)
            _ = try await session.call(.post, "/keys/labelled/tags", #"{"set":{"K":"\u212A"}}"#)
            let kelvinValue = try await session.call(.get, "/keys/labelled")
            #expect(
                (kelvinValue.json["tags"] as? [String: String])?.first { $0.key.bytesEqual("K") }?.value
                    .bytesEqual("\u{212A}") == true)
            _ = try await session.call(.post, "/keys/labelled/description", #"{"description":"caf\u00e9"}"#)
            let decomposed = try await session.call(
                .post, "/keys/labelled/description", #"{"description":"cafe\u0301"}"#)
            #expect((decomposed.json["description"] as? String)?.bytesEqual("cafe\u{301}") == true)
            _ = try await session.call(.post, "/keys/labelled/tags", #"{"remove":["K"]}"#)
            let many = (0..<50).map { #""t\#($0)":"v""# }.joined(separator: ",")
            let full = try await session.call(.post, "/keys/labelled/tags", #"{"set":{\#(many)}}"#)
            #expect(full.status == 400 && full.errorField == "set")  // 50 new + "a" = 51
        }
    }
}
