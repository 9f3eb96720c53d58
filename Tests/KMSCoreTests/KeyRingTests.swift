import Crypto
import Foundation
import KMSCore
import KMSProtocol
import KMSTestSupport
import Synchronization
import Testing

@Suite struct KeyRingTests {
    let clock = ManualClock()
    let master: MasterKey

    init() throws {
        master = try MasterKey(bytes: Data(repeating: 9, count: 32))
    }

    func ring(graceMs: Int64 = 60_000, store: any KeyStore = InMemoryKeyStore()) -> KeyRing {
        KeyRing(store: store, masterKey: master, lifecycle: KeyLifecycle(graceMs: graceMs), clock: clock)
    }

    /// Only the alias conflict is tried again: `KMSError`'s `==` compares codes, and another `503` (a
    /// statement given up on that may have committed) must not be repeated as if it were one.
    @Test func onlyAnAliasConflictIsTriedAgain() async throws {
        let calls = Mutex(0)
        await #expect(throws: KMSError.self) {
            try await KeyRing.againIfAliasChanged({ () async throws(KMSError) in
                calls.withLock { $0 += 1 }
                throw KMSError.storageUnavailable("a statement given up on")
            }) { $0.isAliasConflict }
        }
        #expect(calls.withLock { $0 } == 1)
        await #expect(throws: KMSError.self) {
            try await KeyRing.againIfAliasChanged({ () async throws(KMSError) in
                calls.withLock { $0 += 1 }
                throw KeyRing.aliasChanged
            }) { $0.isAliasConflict }
        }
        #expect(calls.withLock { $0 } == 1 + KeyRing.aliasRaceAttempts)
    }

    /// A rotation given the record its caller read for its checks writes from it without a read of its own;
    /// given a record another change has since made stale, its write conflicts and it reads again: on top of
    /// a rotation, or refused for a key disabled in between (nothing added). A record of another key is not
    /// used.
    @Test func aRotationFromARecordReadBeforeWritesOnTopOfChanges() async throws {
        let store = CountingReads()
        let keys = ring(store: store)
        let key = try await keys.generate(alias: nil)
        let other = try await keys.generate(alias: nil)
        let read = try await keys.resolve(key.keyId, field: "keyId", fresh: true)
        let before = store.reads.withLock { $0 }
        #expect(try await keys.rotate(key.keyId, read: read).activeVersion == 2)
        #expect(store.reads.withLock { $0 } == before)
        #expect(try await keys.rotate(key.keyId, read: read).versions.count == 3)
        let current = try await keys.resolve(key.keyId, field: "keyId", fresh: true)
        _ = try await keys.change(.disable, on: key.keyId)
        await #expect(throws: KMSError(.keyDisabled, "")) { try await keys.rotate(key.keyId, read: current) }
        #expect(try await keys.resolve(key.keyId, field: "keyId").versions.count == 3)
        // A fresh record of `key` given for `other`: `other` is rotated, `key` left as it is.
        _ = try await keys.change(.enable, on: key.keyId)
        let fresh = try await keys.resolve(key.keyId, field: "keyId", fresh: true)
        #expect(try await keys.rotate(other.keyId, read: fresh).keyId == other.keyId)
        #expect(try await keys.resolve(other.keyId, field: "keyId").versions.count == 2)
        #expect(try await keys.resolve(key.keyId, field: "keyId").versions.count == 3)
    }

    /// An in-memory store that counts reads by key id.
    final class CountingReads: ForwardingKeyStore {
        let inner = InMemoryKeyStore()
        let reads = Mutex(0)

        func key(id: String) async throws(KMSError) -> KeyRecord? {
            reads.withLock { $0 += 1 }
            return try await inner.key(id: id)
        }
    }

    @Test func graceAndRetirementFollowTheClock() async throws {
        let store = InMemoryKeyStore()
        let keys = ring(store: store)
        let key = try await keys.generate(alias: "photos")
        let old = try await keys.encrypt("photos", plaintext: Data("v1".utf8), aad: Data())
        clock.advance(milliseconds: 1_000)
        let rotated = try await keys.rotate(key.keyId)
        #expect(rotated.activeVersion == 2)
        let meta = keys.metadata(rotated)
        #expect(meta.versions.map(\.status) == ["grace", "active"])
        #expect(meta.versions[0].graceUntil == Timestamp.format(rotated.versions[1].createdAt.addingTimeInterval(60)))
        #expect(meta.versions[1].graceUntil == nil)
        clock.advance(milliseconds: 59_999)
        #expect(try await keys.decrypt(old.ciphertext, aad: Data()).plaintext == Data("v1".utf8))
        clock.advance(milliseconds: 1)  // exactly graceUntil: retired
        let retired = await #expect(throws: KMSError.self) { try await keys.decrypt(old.ciphertext, aad: Data()) }
        #expect(retired?.code == .keyVersionRetired && retired?.message.contains("version 1") == true)
        await #expect(throws: KMSError.self) { try await keys.rewrap(old.ciphertext, aad: Data()) }
        #expect(keys.metadata(try await keys.resolve("photos", field: "keyId")).versions[0].status == "retired")
        // Raising the grace period rescues it; the material was kept.
        let rescued = ring(graceMs: 120_000, store: store)
        let rewrapped = try await rescued.rewrap(old.ciphertext, aad: Data())
        #expect(rewrapped.version == 2)
        #expect(try await rescued.decrypt(rewrapped.ciphertext, aad: Data()).plaintext == Data("v1".utf8))
    }

    /// The store holds at most `maxKeys` keys (`KMS_MAX_KEYS`): a generate past them is `409
    /// limit_reached` and writes nothing (a review made 6,719 keys of the largest labels from one client).
    @Test func aGeneratePastTheKeyLimitIsRefused() async throws {
        let store = InMemoryKeyStore()
        let keys = KeyRing(
            store: store, masterKey: master, lifecycle: KeyLifecycle(graceMs: 0, maxKeys: 2), clock: clock)
        _ = try await keys.generate(alias: "one")
        _ = try await keys.generate(alias: nil)
        let refused = await #expect(throws: KMSError.self) { _ = try await keys.generate(alias: "three") }
        #expect(refused?.code == .limitReached && refused?.message.contains("KMS_MAX_KEYS") == true)
        let count = try await store.count()
        let three = try await store.key(alias: "three")
        #expect(count == 2 && three == nil)
    }

    /// A review gave 60 keys 85 KB of labels each (within lifecycle-v1's limits) and every client that
    /// read them failed `kms keys list` (an answer past the client's 4 MiB). A page also ends before its
    /// labels pass 1 MiB, with `next`; every key is still listed once across the pages.
    @Test func aListPageEndsBeforeAMebibyteOfLabels() async throws {
        let keys = KeyRing(
            store: InMemoryKeyStore(), masterKey: master, lifecycle: KeyLifecycle(graceMs: 0), clock: clock)
        let wide = String(repeating: "\u{1F600}", count: 2_048)  // 8 KiB
        let tags = Dictionary(
            uniqueKeysWithValues: (0..<50).map {
                ("t\($0)" + String(repeating: "\u{1F600}", count: 120), String(repeating: "\u{1F600}", count: 256))
            })
        var made: [String] = []
        for _ in 0..<30 {
            let key = try await keys.generate(alias: nil)
            _ = try await keys.change(.labels(KeyLabels(description: wide, set: tags)), on: key.keyId)
            made.append(key.keyId)
        }
        var listed: [String] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try await keys.list(after: after, limit: 100)
            let bytes = try JSONEncoder().encode(page).count
            #expect(bytes < 2 << 20, "a page of \(bytes) bytes")
            listed += page.keys.map(\.keyId)
            after = page.next
            pages += 1
        } while after != nil && pages < 10
        #expect(pages > 1 && listed == made.sorted { $0.bytesPrecede($1) }, "\(pages) pages")
        // The ids-only page (the AWS door's ListKeys) has no such budget: it returns no labels (a review
        // counted 102 pages where 7 would do).
        let ids = try await keys.listIds(after: nil, limit: 100)
        #expect(ids.keyIds == made.sorted { $0.bytesPrecede($1) } && ids.next == nil)
        let two = try await keys.listIds(after: nil, limit: 2)
        #expect(two.keyIds.count == 2 && two.next == two.keyIds.last)
        // Counted as JSON writes them: labels of quotes are twice their bytes (the final review).
        let quoted = KeyRing(
            store: InMemoryKeyStore(), masterKey: master, lifecycle: KeyLifecycle(graceMs: 0), clock: clock)
        let quotes = String(repeating: "\"", count: 8_192)
        let quotedTags = Dictionary(
            uniqueKeysWithValues: (0..<50).map { ("t\($0)", String(repeating: "\"", count: 256)) })
        for _ in 0..<60 {
            let key = try await quoted.generate(alias: nil)
            _ = try await quoted.change(.labels(KeyLabels(description: quotes, set: quotedTags)), on: key.keyId)
        }
        let page = try await quoted.list(after: nil, limit: 100)
        let bytes = try JSONEncoder().encode(page).count
        #expect(page.next != nil && bytes < (1 << 20) + 100_000, "a page of \(bytes) bytes")
    }

    /// A key has at most `KeyLifecycle.maxVersions` versions (10,000): past them a rotation by
    /// request or schedule is `limit_reached` and writes no version (a scheduled one moves to the
    /// next period, so the key is named once a period and does not stay due); the key still
    /// encrypts and decrypts with the versions it has, and the rotation for the encryption count,
    /// a cryptographic bound, still happens. A list page ends before one full key's versions.
    @Test func rotationsStopAtTheVersionLimit() async throws {
        let store = InMemoryKeyStore()
        let keys = KeyRing(
            store: store, masterKey: master,
            lifecycle: KeyLifecycle(graceMs: 172_800_000, rotateAfterEncryptions: 2, maxVersions: 3, pageVersions: 3),
            clock: clock)
        let key = try await keys.generate(alias: nil)
        let first = try await keys.encrypt(key.keyId, plaintext: Data("v1".utf8), aad: Data())
        _ = try await keys.rotate(key.keyId)
        _ = try await keys.change(.rotation(periodDays: 1), on: key.keyId)
        #expect(try await keys.rotate(key.keyId).activeVersion == 3)
        let refused = await #expect(throws: KMSError.self) { try await keys.rotate(key.keyId) }
        #expect(refused?.code == .limitReached && refused?.field == "keyId", "\(String(describing: refused))")
        #expect(refused?.message.contains("3 versions") == true, "\(String(describing: refused?.message))")
        let full = try #require(try await store.key(id: key.keyId))
        #expect(throws: KMSError.self) { try keys.checkRotatable(full) }
        // The schedule comes due: the pass names the key, adds no version and moves the date a period on.
        clock.advance(milliseconds: 86_400_000)
        let failures = try await keys.runScheduled { _ in Issue.record("a key past its limit was rotated") }
        #expect(failures.map(\.keyId) == [key.keyId] && failures.first?.error.code == .limitReached)
        let record = try #require(try await store.key(id: key.keyId))
        #expect(record.versions.count == 3 && record.nextRotationAt == clock.now().addingTimeInterval(86_400))
        #expect(try await keys.runScheduled { _ in Issue.record("rotated") }.isEmpty)
        #expect(try await keys.decrypt(first.ciphertext, aad: Data()).plaintext == Data("v1".utf8))
        // Two encryptions under version 3 reach the count: rotated past the limit.
        for _ in 0..<2 {
            #expect(try await keys.encrypt(key.keyId, plaintext: Data("v3".utf8), aad: Data()).version == 3)
        }
        var rotated: [KeyRing.ScheduledOutcome] = []
        #expect(await keys.recordUsage { rotated.append($0) }.isEmpty)
        #expect(try #require(try await store.key(id: key.keyId)).versions.count == 4 && rotated.count == 1)
        // A page of keys stops before its versions pass one full key's: this key and a new one (1 + 4 > 3).
        let other = try await keys.generate(alias: nil)
        let page = try await keys.list(after: nil, limit: 100)
        #expect(page.keys.count == 1 && page.next == page.keys.first?.keyId, "\(page.keys.map(\.keyId))")
        let rest = try await keys.list(after: page.next, limit: 100)
        #expect(rest.keys.map(\.keyId) == [[key.keyId, other.keyId].max()] && rest.next == nil)
        // A lowered limit does not shrink pages (a review: at 2, a page held one or two keys).
        let low = KeyRing(
            store: InMemoryKeyStore(), masterKey: master, lifecycle: KeyLifecycle(graceMs: 0, maxVersions: 2),
            clock: clock)
        for _ in 0..<5 { _ = try await low.rotate(try await low.generate(alias: nil).keyId) }
        let whole = try await low.list(after: nil, limit: 100)
        #expect(whole.keys.count == 5 && whole.next == nil && whole.keys.allSatisfy { $0.versions.count == 2 })
    }

    /// The rotation for the encryption count is not held while the host's clock is off its reference (a
    /// version past the count would go on encrypting toward the nonces' bound), and is dated by the
    /// reference: the host's clock 8 days behind would end the old version's grace period at once. A
    /// requested rotation is refused meanwhile (a review found the first had no test).
    @Test func theRotationForTheCountIsDatedByTheReference() async throws {
        let store = InMemoryKeyStore()
        var keys = KeyRing(
            store: store, masterKey: master, lifecycle: KeyLifecycle(graceMs: 60_000, rotateAfterEncryptions: 2),
            clock: clock)
        let truth = clock.now().addingTimeInterval(8 * 86_400)
        keys.reference = ReferenceClock(name: "the test's reference") { truth }
        let key = try await keys.generate(alias: nil)
        for _ in 0..<2 { _ = try await keys.encrypt(key.keyId, plaintext: Data(), aad: Data()) }
        let requested = await #expect(throws: KMSError.self) { try await keys.rotate(key.keyId) }
        #expect(requested?.code == .serverBusy)
        #expect(await keys.recordUsage { _ in }.isEmpty)
        let record = try #require(try await store.key(id: key.keyId))
        #expect(record.versions.count == 2 && record.versions.last?.createdAt == truth)
    }

    /// A reference that cannot be read fails the rotation for the count for this pass, reported, with no
    /// intent recorded; the version is not dated by the host's clock instead (it was, silently: `try?`).
    /// The key's next count, with the reference back, rotates it.
    @Test func aReferenceThatCannotBeReadHoldsTheRotationForTheCount() async throws {
        let store = InMemoryKeyStore()
        var keys = KeyRing(
            store: store, masterKey: master, lifecycle: KeyLifecycle(graceMs: 60_000, rotateAfterEncryptions: 2),
            clock: clock)
        keys.reference = ReferenceClock(name: "the test's reference") { () throws(KMSError) in
            throw KMSError(.serverBusy, "the reference cannot be read", detail: "a test outage")
        }
        let key = try await keys.generate(alias: nil)
        for _ in 0..<2 { _ = try await keys.encrypt(key.keyId, plaintext: Data(), aad: Data()) }
        let recorded = Mutex(0)
        let failures = await keys.recordUsage(
            intent: { _ in recorded.withLock { $0 += 1 } }, unwritten: { _, _ in recorded.withLock { $0 += 1 } },
            report: { _ in })
        #expect(failures.map(\.keyId) == [key.keyId] && failures.first?.error.detail == "a test outage")
        #expect(recorded.withLock { $0 } == 0)
        #expect(try #require(try await store.key(id: key.keyId)).versions.count == 1)
        let truth = clock.now()
        keys.reference = ReferenceClock(name: "the test's reference") { truth }
        _ = try await keys.encrypt(key.keyId, plaintext: Data(), aad: Data())
        #expect(await keys.recordUsage { _ in }.isEmpty)
        #expect(try #require(try await store.key(id: key.keyId)).versions.count == 2)
    }

    @Test func encryptDecryptWithAADAndRefusals() async throws {
        let keys = ring()
        let key = try await keys.generate(alias: nil)
        let sealed = try await keys.encrypt(key.keyId, plaintext: Data("secret".utf8), aad: Data("ctx".utf8))
        #expect(sealed.ciphertext.hasPrefix("kms:v1:\(key.keyId):1:"))
        #expect(try await keys.decrypt(sealed.ciphertext, aad: Data("ctx".utf8)).plaintext == Data("secret".utf8))
        let wrongAAD = await #expect(throws: KMSError.self) { try await keys.decrypt(sealed.ciphertext, aad: Data()) }
        #expect(wrongAAD?.code == .decryptionFailed)
        var edited = Array(sealed.ciphertext)
        edited[edited.count - 5] = edited[edited.count - 5] == "A" ? "B" : "A"
        let tampered = await #expect(throws: KMSError.self) {
            try await keys.decrypt(String(edited), aad: Data("ctx".utf8))
        }
        #expect(tampered?.code == .decryptionFailed)
        let relabelled = sealed.ciphertext.replacingOccurrences(of: ":1:", with: ":2:")
        let missingVersion = await #expect(throws: KMSError.self) {
            try await keys.decrypt(relabelled, aad: Data("ctx".utf8))
        }
        #expect(missingVersion?.code == .keyVersionNotFound)
        for bad in [
            "", "kms:v1:", "vault:v1:abc", "kms:v1:\(key.keyId):01:AAAA", "kms:v1:\(key.keyId):1:!!",
            "kms:v1:x:1:" + String(repeating: "A", count: 40),
        ] {
            let malformed = await #expect(throws: KMSError.self) { try await keys.decrypt(bad, aad: Data()) }
            #expect(malformed?.code == .invalidRequest && malformed?.field == "ciphertext", "\(bad)")
        }
        let unknown = await #expect(throws: KMSError.self) {
            try await keys.decrypt(
                sealed.ciphertext.replacingOccurrences(of: key.keyId, with: "key_unknownunknownunknown"), aad: Data())
        }
        #expect(unknown?.code == .keyNotFound)
        #expect(
            try await keys.decrypt(
                try await keys.encrypt(key.keyId, plaintext: Data(), aad: Data()).ciphertext, aad: Data()
            ).plaintext.isEmpty)
    }

    @Test func dataKeysDecryptWithTheSameAAD() async throws {
        let keys = ring()
        let key = try await keys.generate(alias: "backup")
        let dataKey = try await keys.dataKey("backup", bytes: 48, aad: Data("nas".utf8))
        #expect(dataKey.plaintext.count == 48 && dataKey.keyId == key.keyId)
        #expect(try await keys.decrypt(dataKey.ciphertext, aad: Data("nas".utf8)).plaintext == dataKey.plaintext)
    }

    @Test func aliasesAreValidatedAndUnique() async throws {
        let keys = ring()
        _ = try await keys.generate(alias: "photos")
        for bad in ["", "-x", "key_x", "a b", String(repeating: "a", count: 65), "generate", "é"] {
            let error = await #expect(throws: KMSError.self) { try await keys.generate(alias: bad) }
            #expect(error?.field == "alias", "\(bad)")
        }
        let taken = await #expect(throws: KMSError.self) { try await keys.generate(alias: "photos") }
        #expect(taken?.code == .aliasInUse)
        let missing = await #expect(throws: KMSError.self) { try await keys.rotate("nothing") }
        #expect(missing?.code == .keyNotFound)
    }

    /// The ciphertext vector of docs/protocol.md (computed with pyca/cryptography).
    @Test func ciphertextVector() async throws {
        let keyId = "key_AAECAwQFBgcICQoLDA0ODw"
        let material = Data(0x20..<0x40)
        let store = InMemoryKeyStore()
        let now = Date()
        let versions = (1...2).map { number in
            KeyVersion(
                version: number, createdAt: now,
                wrappedMaterial: (try? master.wrap(material, aad: "kms-v1/key-material\n\(keyId)\n\(number)")) ?? Data()
            )
        }
        try await store.create(KeyRecord(keyId: keyId, alias: nil, createdAt: now, versions: versions))
        let vector = "kms:v1:key_AAECAwQFBgcICQoLDA0ODw:2:oKGio6SlpqeoqaqrFlnIWKv7oNrJR9nVVcDvDxFBODw1wo0zKQWFI8k="
        let opened = try await ring(store: store).decrypt(vector, aad: Data("photos/2026/img_0001.jpg".utf8))
        #expect(opened.plaintext == Data("hello, photos".utf8) && opened.version == 2)
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../docs/protocol.md")
        #expect(try String(contentsOf: docs, encoding: .utf8).contains(vector))
    }

    /// A backup can only be made by a holder of the master key, but material of another size than
    /// AES-256's is still refused at restore (it would make every later encrypt with the key fail).
    @Test func aBackupWithMaterialOfAnotherSizeIsRefused() throws {
        let keyId = "key_AAECAwQFBgcICQoLDA0ODw"
        func record(_ size: Int) throws -> KeyRecord {
            let wrapped = try master.wrap(Data(repeating: 7, count: size), aad: "kms-v1/key-material\n\(keyId)\n1")
            return KeyRecord(
                keyId: keyId, alias: nil, createdAt: Date(),
                versions: [KeyVersion(version: 1, createdAt: Date(), wrappedMaterial: wrapped)])
        }
        #expect(try BackupContents(keys: [try record(32)]).open(with: master).counts.versions == 1)
        for size in [0, 16, 24, 33, 64] {
            let refused = #expect(throws: KMSError.self) {
                try BackupContents(keys: [try record(size)]).open(with: master)
            }
            #expect(refused?.code == .invalidRequest && refused?.message.contains("\(size) bytes") == true)
        }
    }

}

/// A review finding: two identical lifecycle changes at one moment both passed
/// the preview, and the one whose compare-and-set lost found on its retry
/// nothing left to do, yet was audited as a second change (rule 9.5).
@Suite struct KeyChangeRaceTests {
    /// A key store whose next `update`, once armed, first lets `race` write
    /// through the real store, then answers `.conflict`.
    final class RacingKeyStore: ForwardingKeyStore {
        let inner = InMemoryKeyStore()
        let race = Mutex<(@Sendable (InMemoryKeyStore, KeyRecord) async throws(KMSError) -> Void)?>(nil)

        func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
            let armed = race.withLock { race in
                defer { race = nil }
                return race
            }
            guard let armed else { return try await inner.update(record, expectedRevision: expectedRevision) }
            try await armed(inner, record)
            return .conflict
        }
    }

    @Test func aChangeAnotherCallMadeFirstIsNotWrittenTwice() async throws {
        let store = RacingKeyStore()
        let keys = KeyRing(
            store: store, masterKey: try MasterKey(bytes: Data(repeating: 9, count: 32)),
            lifecycle: KeyLifecycle(graceMs: 60_000), clock: ManualClock())
        let key = try await keys.generate(alias: nil)
        // The other call's disable lands between this one's read and its write.
        store.race.withLock { race in
            race = { inner, record throws(KMSError) in
                var disabled = record
                disabled.state = .disabled
                _ = try await inner.update(disabled, expectedRevision: record.revision)
            }
        }
        let outcome = try await keys.change(.disable, reportingWriteOn: key.keyId)
        #expect(outcome.record.state == .disabled && !outcome.written)
        #expect(KeyRing.changeFields(outcome).contains { $0 == ("changed", "false") })
        let alone = try await keys.change(.enable, reportingWriteOn: key.keyId)
        #expect(alone.written && !KeyRing.changeFields(alone).contains { $0.0 == "changed" })
    }
}
