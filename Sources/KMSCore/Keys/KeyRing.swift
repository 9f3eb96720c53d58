import Crypto
public import Foundation
public import KMSProtocol

/// The key domain: generate, rotate, describe, and use managed keys.
///
/// Key material is unwrapped from the master key for each operation and
/// dropped afterwards; nothing here logs or returns it except `dataKey`'s
/// fresh data key, which is the point of that call.
public struct KeyRing: Sendable {
    public let store: any KeyStore
    public let masterKey: MasterKey
    public let lifecycle: KeyLifecycle
    public let clock: any KMSClock
    /// Encryptions this process made and has not yet added to the store (shared by copies).
    let usage = KeyUsage()
    /// Checked before a change that writes a date (`ReferenceClock.requireAgreement`); nil: none (tests,
    /// and the tools that open a store without a server).
    public var reference: ReferenceClock?

    public init(store: any KeyStore, masterKey: MasterKey, lifecycle: KeyLifecycle, clock: any KMSClock) {
        self.store = store
        self.masterKey = masterKey
        self.lifecycle = lifecycle
        self.clock = clock
    }

    // MARK: Lifecycle

    /// Refuses a malformed alias: called before anything is recorded about
    /// the request (the audit intent), and again by `generate`.
    public func checkAlias(_ alias: String?) throws(KMSError) {
        if let alias, !KeyIdentifier.isValidAlias(alias) {
            throw KMSError(
                .invalidRequest,
                "`alias` must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} and not start with key_ (nor be generate or rotate)",
                field: "alias")
        }
        if let alias { try Self.checkNotUUIDShaped(alias, moving: false) }
    }

    /// Refuses to point an alias of a UUID's form at a key, new or moved: the
    /// AWS door reads that name as a key's KeyId, so the alias would send a
    /// caller who copied one key's KeyId to another key. Such aliases made
    /// before the rule (or restored) still resolve and can be deleted.
    public static func checkNotUUIDShaped(_ alias: String, moving: Bool) throws(KMSError) {
        guard KeyIdentifier.hasUUIDShape(alias) else { return }
        throw KMSError(
            .invalidRequest,
            moving
                ? "an alias of a UUID's form cannot be moved, since the AWS door reads that name as a key's KeyId; delete it and create one with another name"
                : "`alias` may not have a UUID's form: the AWS door reads that as a key's KeyId",
            field: "alias")
    }

    /// Refuses a reference that cannot name a key (empty: `400`; neither a
    /// key id nor an alias: `404`, as `resolve` would), without a store read.
    /// Aliases named `generate` or `rotate` made before they were reserved
    /// still resolve (lifecycle-v1 rule 9.3).
    public func checkReference(_ reference: String, field: String) throws(KMSError) {
        guard !reference.isEmpty else { throw KMSError(.invalidRequest, "`\(field)` must not be empty", field: field) }
        guard KeyIdentifier.isKeyId(reference) || KeyIdentifier.isAliasSyntax(reference) else {
            throw Self.keyNotFound
        }
    }

    /// The native door's answer for a name that resolves to nothing (the AWS door words its own).
    public static let keyNotFound = KMSError(
        .keyNotFound, "no key has this id or alias; create one with POST \(WirePath.generateKey)")

    /// A new enabled key with version 1, and its alias when given
    /// (`labels` already validated by `KeyLabels`), within `KMS_MAX_KEYS` (`checkKeyRoom`).
    public func generate(alias: String?, labels: KeyLabels = KeyLabels(), policy: String? = nil)
        async throws(KMSError) -> KeyRecord
    {
        try await generate(alias: alias, labels: labels, policy: policy, roomChecked: false)
    }

    /// The same for the doors, which ran `checkKeyRoom` just before, ahead of the audit intent: the
    /// store is not counted twice (on PostgreSQL a `count(*)`: a review). Package-only, so that no
    /// other caller skips the limit.
    package func generate(alias: String?, labels: KeyLabels, policy: String?, roomChecked: Bool)
        async throws(KMSError) -> KeyRecord
    {
        try checkAlias(alias)
        if !roomChecked { try await checkKeyRoom() }
        let keyId = KeyIdentifier.newKeyId()
        let now = clock.now()
        var record = KeyRecord(
            keyId: keyId, alias: alias, createdAt: now,
            versions: [
                KeyVersion(version: 1, createdAt: now, wrappedMaterial: try newMaterial(keyId: keyId, version: 1))
            ])
        record.description = labels.description ?? ""
        record.tags = labels.set
        record.policy = policy
        try await store.create(record)
        return record
    }

    /// Refuses a new key when the store holds `lifecycle.maxKeys` (`409 limit_reached`): called before the
    /// audit intent (a client at the limit retrying would write an intent and a failure each time: the
    /// review), and by `generate`. Counted, not reserved: generates in flight together at the limit may
    /// pass it by as many as they are (restores and migrations are not limited: they copy a store).
    public func checkKeyRoom() async throws(KMSError) {
        guard let maxKeys = lifecycle.maxKeys, try await store.count() >= maxKeys else { return }
        throw Self.keyLimitReached
    }

    /// A generate past `KMS_MAX_KEYS` (the count is not said: any `keys:create` client reads this).
    public static let keyLimitReached = KMSError(
        .limitReached,
        "this server holds as many keys as its limit allows (KMS_MAX_KEYS), keys pending deletion included until they are deleted: have the operator raise the limit, or delete keys you no longer need (a scheduled deletion makes room only when it is carried out)"
    )

    /// Refuses, before anything is recorded, a change that would write a date from a clock that differs
    /// from the reference (`ReferenceClock.requireAgreement`): a rotation (`change` nil) or a change whose
    /// `writesADate`. Called by `preview` and `checkRotation`, the steps both doors take before the
    /// audit intent; the change itself checks again.
    func requireDateAgreement(for change: KeyChange?) async throws(KMSError) {
        guard change?.writesADate ?? true else { return }
        try await reference?.requireAgreement()
    }

    /// Adds a version; concurrent rotations of one key each add exactly one
    /// (compare-and-set on the revision, retried on conflict). `read`: the record as the caller read it
    /// fresh for its checks (`checkRotation`), the first attempt's; a change since makes that attempt's
    /// write a conflict, and the retry reads again (one fresh read saved: the last read's Low).
    public func rotate(_ reference: String, read: KeyRecord? = nil) async throws(KMSError) -> KeyRecord {
        // The new version's date starts the old one's grace period: a clock behind would retire it at once.
        try await self.reference?.requireAgreement()
        // Only a record of the key `reference` names (a caller's mistake must not rotate another key).
        var known = read.flatMap { $0.keyId == reference || $0.aliases.contains(reference) ? $0 : nil }
        let rotated = try await updateRetrying { () async throws(KMSError) in
            if let record = known {
                known = nil
                return record
            }
            return try await resolve(reference, field: "keyId", fresh: true)
        } change: { (record: inout KeyRecord) throws(KMSError) in
            try record.checkUsable()
            try addVersion(to: &record)
            return true
        }
        guard let rotated else { throw Self.keyNotFound }
        return rotated.record
    }

    /// The compare-and-set loop of every change to a record: `read` it (nil:
    /// nothing to change), let `change` edit it (false: nothing to write), and
    /// store it only if its revision is still the one read; on a conflict, all
    /// of it again (at most 64 times, then `key_store_conflict`).
    /// Answers the record stored, or the one read when `change` wrote nothing.
    func updateRetrying(
        read: () async throws(KMSError) -> KeyRecord?, change: (inout KeyRecord) throws(KMSError) -> Bool
    ) async throws(KMSError) -> (record: KeyRecord, written: Bool)? {
        for _ in 0..<64 {
            guard var record = try await read() else { return nil }
            let expected = record.revision
            guard try change(&record) else { return (record, false) }
            switch try await store.update(record, expectedRevision: expected) {
            case .updated(let stored): return (stored, true)
            case .conflict: continue
            }
        }
        throw KMSError.keyStoreConflict
    }

    /// A key by id or alias; `404 key_not_found` when neither names one.
    /// `fresh` reads past a store's cache (PostgreSQL keeps records up to a
    /// second): every change to a key decides on what the database holds, or
    /// a disable after an enable made elsewhere a moment ago would find the
    /// key "already disabled" and write nothing, and an alias moved elsewhere
    /// would still name its old key.
    public func resolve(_ reference: String, field: String, fresh: Bool = false) async throws(KMSError) -> KeyRecord {
        try checkReference(reference, field: field)
        let record: KeyRecord?
        switch (KeyIdentifier.isKeyId(reference), fresh) {
        case (true, false): record = try await store.key(id: reference)
        case (true, true): record = try await store.freshKey(id: reference)
        case (false, false): record = try await store.key(alias: reference)
        case (false, true): record = try await store.freshKey(alias: reference)
        }
        guard let record else { throw Self.keyNotFound }
        return record
    }

    /// A new active version at the end of `record` (not yet stored).
    /// `pastLimit`: the rotation for the encryption count, which keeps a version under what random
    /// nonces allow; a cryptographic bound comes before the resource limit (and each version past it
    /// takes 2^31 encryptions, so it cannot be used to grow a key).
    /// `at`: the date to give it (the reference's, for the rotation at the encryption limit), else now.
    func addVersion(to record: inout KeyRecord, pastLimit: Bool = false, at date: Date? = nil) throws(KMSError) {
        if !pastLimit { try checkVersionRoom(record) }
        let number = record.versions.count + 1
        let dated = date ?? clock.now()
        let now = max(dated, record.versions.last?.createdAt ?? dated)
        record.versions.append(
            KeyVersion(
                version: number, createdAt: now, wrappedMaterial: try newMaterial(keyId: record.keyId, version: number))
        )
    }

    /// Whether `record` may gain a version: enabled, and under `KeyLifecycle.maxVersions`.
    public func checkRotatable(_ record: KeyRecord) throws(KMSError) {
        try record.checkUsable()
        try checkVersionRoom(record)
    }

    /// What a rotation of `record` would be refused for, checked by both doors before the audit intent
    /// (and for DryRun): the key's state and version room, then the clock. A loop of rotations of a
    /// disabled key, or one at its version limit, otherwise wrote an intent and a failure each (a review);
    /// `rotate` checks it all again on the record it changes.
    public func checkRotation(_ record: KeyRecord) async throws(KMSError) {
        try checkRotatable(record)
        try await requireDateAgreement(for: nil)
    }

    func checkVersionRoom(_ record: KeyRecord) throws(KMSError) {
        guard record.versions.count < lifecycle.maxVersions else {
            throw KMSError(
                .limitReached,
                "the key has \(record.versions.count) versions, the most a key may have: generate a new key and rewrap its ciphertexts to it",
                field: "keyId")
        }
    }

    /// Every name of the key `reference` names; nil when none does (or the
    /// reference is malformed): what a permission decision needs.
    public func resolveNames(_ reference: String) async throws(KMSError) -> KeyAccess.Names? {
        try await resolveNames(reference, fresh: false)
    }

    /// `resolveNames` past the store's cache, for a change to the key (`resolve`'s `fresh`).
    public func resolveNamesFresh(_ reference: String) async throws(KMSError) -> KeyAccess.Names? {
        try await resolveNames(reference, fresh: true)
    }

    func resolveNames(_ reference: String, fresh: Bool) async throws(KMSError) -> KeyAccess.Names? {
        do {
            let record = try await resolve(reference, field: "keyId", fresh: fresh)
            return KeyAccess.Names(keyId: record.keyId, aliases: record.aliases)
        } catch {
            if error.code == .keyNotFound || error.code == .invalidRequest { return nil }
            throw error
        }
    }

    public func metadata(_ record: KeyRecord) -> KeyMetadata {
        let now = clock.now()
        var metadata = KeyMetadata(
            keyId: record.keyId, alias: record.alias, createdAt: Timestamp.format(record.createdAt),
            activeVersion: record.activeVersion,
            versions: record.versions.map { version in
                KeyMetadata.Version(
                    version: version.version, createdAt: Timestamp.format(version.createdAt),
                    status: lifecycle.status(record, version: version.version, now: now).rawValue,
                    graceUntil: lifecycle.graceUntil(record, version: version.version).map(Timestamp.format))
            })
        metadata.state = record.state.rawValue
        metadata.deletionDate = record.deletionDate.map(Timestamp.format)
        metadata.pendingWindowDays = record.pendingWindowDays
        metadata.rotationPeriodDays = record.rotationPeriodDays
        metadata.nextRotationAt = record.nextRotationAt.map(Timestamp.format)
        metadata.description = record.description
        metadata.tags = record.tags
        metadata.aliases = record.aliases
        metadata.awsKeyId = AWSKeyId.uuid(fromNative: record.keyId)
        return metadata
    }

    /// The label bytes (description, tags, aliases) a page of `list` may carry past its first key.
    static let pageLabelBytes = 1 << 20

    /// A page of the keys `including` accepts (identity-v1: the client's
    /// readable keys); `limit` counts those, and `next` is given only when
    /// more of them follow.
    public func list(
        after: String?, limit: Int, including: (KeyRecord) -> Bool = { _ in true }
    ) async throws(KMSError) -> KeyListResponse {
        let (page, more) = try await scan(after: after, limit: limit, budgeted: true, including: including)
        return KeyListResponse(keys: page.map(metadata), next: more ? page.last?.keyId : nil)
    }

    /// `list`'s page as key ids only, with no version or label budget: the AWS door's `ListKeys` returns
    /// ids and ARNs, and its pages ended on the labels' budget (102 pages for 6,719 keys where 7 would
    /// do) after building every key's metadata (a review).
    public func listIds(
        after: String?, limit: Int, including: (KeyRecord) -> Bool = { _ in true }
    ) async throws(KMSError) -> (keyIds: [String], next: String?) {
        let (page, more) = try await scan(after: after, limit: limit, budgeted: false, including: including)
        return (page.map(\.keyId), more ? page.last?.keyId : nil)
    }

    /// The records of one page and whether more follow; `budgeted`: the page also ends before its
    /// versions or labels pass their bounds.
    private func scan(
        after: String?, limit: Int, budgeted: Bool, including: (KeyRecord) -> Bool
    ) async throws(KMSError) -> (records: [KeyRecord], more: Bool) {
        let batchSize = max(limit + 1, 100)
        var page: [KeyRecord] = []
        var versions = 0
        var labels = 0
        var cursor = after
        var more = false
        scan: while true {
            let batch = try await store.list(after: cursor, limit: batchSize)
            for record in batch where including(record) {
                // A page also ends before its versions pass one full key's (`next` says more follow, as
                // api-v1 allows): 100 keys near the version limit would be a 150 MB answer, past what a
                // client reads (the Swift client's limit is 4 MB). And before its descriptions, tags and
                // aliases pass 1 MiB: a review gave 60 keys 85 KB of labels each, within lifecycle-v1's
                // limits, and every client that reads them failed `kms keys list`.
                let size = record.labelBytes
                if page.count == limit
                    || (budgeted && !page.isEmpty
                        && (versions + record.versions.count > lifecycle.pageVersions
                            || labels + size > Self.pageLabelBytes))
                {
                    more = true
                    break scan
                }
                page.append(record)
                versions += record.versions.count
                labels += size
            }
            guard batch.count == batchSize, let last = batch.last else { break }
            cursor = last.keyId
        }
        return (page, more)
    }

    // MARK: Cryptography

    public func encrypt(_ reference: String, plaintext: Data, aad: Data) async throws(KMSError) -> CiphertextResponse {
        let record = try await resolve(reference, field: "keyId")
        try record.checkUsable()
        return try seal(plaintext, record: record, aad: aad)
    }

    public func decrypt(_ text: String, aad: Data) async throws(KMSError) -> DecryptResponse {
        let (parsed, plaintext) = try await open(text, aad: aad)
        return DecryptResponse(keyId: parsed.keyId, version: parsed.version, plaintext: plaintext)
    }

    /// Re-encrypts under the active version; the plaintext never leaves the server.
    public func rewrap(_ text: String, aad: Data) async throws(KMSError) -> CiphertextResponse {
        let (parsed, plaintext) = try await open(text, aad: aad)
        let record = try await resolve(parsed.keyId, field: "ciphertext")
        try record.checkUsable()
        return try seal(plaintext, record: record, aad: aad)
    }

    /// A fresh data key, returned in the clear and encrypted under the managed key.
    public func dataKey(_ reference: String, bytes: Int, aad: Data) async throws(KMSError) -> DataKeyResponse {
        let record = try await resolve(reference, field: "keyId")
        try record.checkUsable()
        let dataKey = SymmetricKeyBytes.random(count: bytes)
        let sealed = try seal(dataKey, record: record, aad: aad)
        return DataKeyResponse(
            keyId: sealed.keyId, version: sealed.version, plaintext: dataKey, ciphertext: sealed.ciphertext)
    }

    // MARK: Helpers

    private static func materialAAD(keyId: String, version: Int) -> String {
        "kms-v1/key-material\n\(keyId)\n\(version)"
    }

    /// The size of every key version's material: an AES-256 key.
    public static let materialBytes = 32

    private func newMaterial(keyId: String, version: Int) throws(KMSError) -> Data {
        try masterKey.wrap(
            SymmetricKeyBytes.random(count: Self.materialBytes), aad: Self.materialAAD(keyId: keyId, version: version))
    }

    private func material(_ record: KeyRecord, version: KeyVersion) throws(KMSError) -> SymmetricKey {
        SymmetricKey(data: try Self.unwrapMaterial(record, version: version, masterKey: masterKey))
    }

    /// A version's raw material (backup and restore compare it across stores).
    static func unwrapMaterial(_ record: KeyRecord, version: KeyVersion, masterKey: MasterKey) throws(KMSError) -> Data
    {
        try masterKey.unwrap(version.wrappedMaterial, aad: materialAAD(keyId: record.keyId, version: version.version))
    }

    private func seal(_ plaintext: Data, record: KeyRecord, aad: Data) throws(KMSError) -> CiphertextResponse {
        guard let active = record.versions.last else { throw KMSError.internal("key without versions") }
        let header = KeyCiphertext(keyId: record.keyId, version: active.version, sealed: Data())
        let key = try material(record, version: active)
        let combined: Data
        do throws(AESGCM256.Failure) {
            combined = try AESGCM256.sealCombined(plaintext, key: key, aad: header.aad(aad))
        } catch {
            throw KMSError.internal("AES-GCM sealing failed")
        }
        let ciphertext = KeyCiphertext(keyId: record.keyId, version: active.version, sealed: combined)
        usage.count(keyId: record.keyId, version: active.version)
        return CiphertextResponse(keyId: record.keyId, version: active.version, ciphertext: ciphertext.text)
    }

    private func open(_ text: String, aad: Data) async throws(KMSError) -> (KeyCiphertext, Data) {
        guard let parsed = KeyCiphertext(parsingEitherForm: text) else {
            throw KMSError(
                .invalidRequest, "`ciphertext` is not a ciphertext of this KMS (kms:v1:<keyId>:<version>:<b64>)",
                field: "ciphertext")
        }
        guard var record = try await store.key(id: parsed.keyId) else {
            throw KMSError(.keyNotFound, "the ciphertext names a key that does not exist here")
        }
        // A version newer than this instance's cached record may have been made a
        // moment ago on another instance (PostgreSQL caches up to a second): read
        // the key once more before answering that the version does not exist.
        if parsed.version > record.activeVersion {
            guard let fresh = try await store.freshKey(id: parsed.keyId) else {
                throw KMSError(.keyNotFound, "the ciphertext names a key that does not exist here")
            }
            record = fresh
        }
        try record.checkUsable()  // lifecycle-v1 rule 9.5: state before version checks
        guard let version = record.version(parsed.version) else {
            throw KMSError(
                .keyVersionNotFound, "the ciphertext names version \(parsed.version), which this key does not have")
        }
        let now = clock.now()
        if lifecycle.status(record, version: parsed.version, now: now) == .retired {
            let ended = lifecycle.graceUntil(record, version: parsed.version).map(Timestamp.format) ?? "?"
            throw KMSError(
                .keyVersionRetired,
                "version \(parsed.version) of this key was retired when its grace period ended at \(ended); "
                    + "raise KMS_KEY_GRACE_MS to rescue data that was not rewrapped in time")
        }
        // Both parsers already refuse fewer bytes than a nonce and a tag; checked here as well, before
        // the version's material is unwrapped, so that no caller reaches the master key with one.
        guard parsed.sealed.count >= AESGCM256.nonceSize + AESGCM256.tagSize,
            let plaintext = AESGCM256.openCombined(
                parsed.sealed, key: try material(record, version: version), aad: parsed.aad(aad))
        else {
            throw KMSError(
                .decryptionFailed,
                "the ciphertext did not authenticate: it was changed, or the aad differs from encryption")
        }
        return (parsed, plaintext)
    }
}
