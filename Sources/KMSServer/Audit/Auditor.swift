import Foundation
import KMSCore
import KMSProtocol
import Synchronization

/// What the server records in the audit log, and when it refuses for want of it.
///
/// - Key-changing operations (generate, rotate): an `intent` entry is made
///   durable *before* the change — if it cannot be, the operation is refused
///   with `503` and nothing changes — and a durable result entry after it.
/// - Crypto operations: the entry is written before the result is returned;
///   if it cannot be, the result is withheld and the answer is `503`.
/// - Session events: written when possible, never refusing anything; they
///   wait for the disk at most the audit timeout. Refusals never wait.
struct Auditor: Sendable {
    let log: AuditLog
    /// Four and four names left out (the final read of 2026-12-06: sixteen made a flood's entries up to
    /// 600 bytes larger; these need no authentication).
    private let refusals = RefusalLimiter(namesKept: 8)
    /// A live access key's refused signatures (`authRefused`'s `accessKeyFound`) have a limiter of their
    /// own, its second's budget and its groups too: only a holder of a live id can spend them (the review of
    /// 5a0c52f: sharing the ten a second in all, junk from anywhere kept a leaked id's guesses out of the log).
    private let foundRefusals = RefusalLimiter(namesKept: 8)
    /// Key-exchange failures have a budget of their own (a review: sharing the refusals' ten a
    /// second let a flood of one kind silence the other), on the server's clock.
    private let keyExchangeFailures = RefusalLimiter()
    /// Denials have theirs too: a client's grants are the admin's, its requests its own.
    private let denials = RefusalLimiter()

    /// The fields that say who asked.
    static func who(_ call: SealedChannel.Call) -> [(String, String)] {
        var fields = [
            ("client", call.context.clientAddress?.description ?? "unknown"),
            ("session", AuditEvent.sessionHash(call.opened.sessionId)),
        ]
        // identity-v1 section 7: who, besides from where.
        if let client = call.opened.client {
            fields += [("clientId", client.clientId), ("clientName", client.name)]
        }
        // The answer's `X-Request-Id`, which the request log line carries too: the two logs join by it (an
        // observability review: they joined by time and address only).
        fields.append(("requestId", call.context.requestId))
        return fields
    }

    func keyChange(
        _ type: String, reference: String?, _ call: SealedChannel.Call, _ change: () async throws(KMSError) -> KeyRecord
    ) async throws(KMSError) -> KeyRecord {
        try await durableChange(type, reference.map { [("key", $0)] } ?? [], call, change) { record in
            [("keyId", record.keyId), ("version", "\(record.activeVersion)")]
        }
    }

    /// A change that fails closed: a durable `intent` entry before it (else
    /// `503` and nothing changes), a durable result entry after it. Key and
    /// client changes (`client.*`) go through here.
    func durableChange<T>(
        _ type: String, _ fields: [(String, String)], _ call: SealedChannel.Call,
        _ change: () async throws(KMSError) -> T, result: (T) -> [(String, String)]
    ) async throws(KMSError) -> T {
        try await durableChange(type, fields, who: Self.who(call), change, result: result)
    }

    /// The same for a caller named by `who` (the AWS door: `door`, `accessKeyId`).
    func durableChange<T>(
        _ type: String, _ fields: [(String, String)], who: [(String, String)],
        _ change: () async throws(KMSError) -> T, result: (T) -> [(String, String)]
    ) async throws(KMSError) -> T {
        try await log.record(AuditEvent(type, outcome: "intent", who + fields), durable: true)
        let value: T
        do {
            value = try await change()
        } catch {
            // A lost alias race is tried again by its door: this attempt changed nothing (a review: it read
            // as a storage failure that may have committed).
            let changed = error.isAliasConflict ? [("changed", "false")] : []
            await log.recordBestEffort(
                AuditEvent(type, outcome: "failure", who + fields + [("code", error.code.rawValue)] + changed))
            throw error
        }
        try await log.record(AuditEvent(type, who + fields + result(value)), durable: true)
        return value
    }

    /// `keyId`: the key a ciphertext names, when no permission check decided
    /// one; read only when the call fails, so a success parses nothing more.
    /// `asked`: the key as the request names it, for a failure with no key decided (`KMS_CLIENT_AUTH=off`).
    func crypto<Output: Sendable>(
        _ operation: String, _ call: SealedChannel.Call, keyId: @autoclosure () -> String? = nil,
        asked: String? = nil, keyAndVersion: (Output) -> (String, Int), _ body: () async throws(KMSError) -> Output
    ) async throws(KMSError) -> Output {
        try await crypto(
            operation, who: Self.who(call), keyId: call.checkedKeyId ?? keyId(), asked: asked,
            keyAndVersion: keyAndVersion, body)
    }

    /// `keyId`, the key the request was checked against, goes into a failure's
    /// entry too: a client guessing encryption contexts is then tied to the
    /// key it tried (a review found failures named no key).
    func crypto<Output: Sendable>(
        _ operation: String, who: [(String, String)], keyId: @autoclosure () -> String?, asked: String? = nil,
        keyAndVersion: (Output) -> (String, Int), _ body: () async throws(KMSError) -> Output
    ) async throws(KMSError) -> Output {
        let output: Output
        do {
            output = try await body()
        } catch {
            // A key id a ciphertext named is the client's text too (its parser takes up to 60 characters after
            // `key_`): recorded by the same rule as a name as asked (a review).
            let named = keyId()
            let key =
                named.map { Self.isServerKeyId($0) ? [("keyId", $0)] : Self.asAsked($0) }
                ?? asked.flatMap { $0.isEmpty ? nil : Self.asAsked($0) } ?? []
            await log.recordBestEffort(
                AuditEvent("crypto.\(operation)", outcome: "failure", who + key + [("code", error.code.rawValue)]))
            throw error
        }
        let (keyId, version) = keyAndVersion(output)
        try await log.record(
            AuditEvent("crypto.\(operation)", who + [("keyId", keyId), ("version", "\(version)")]), durable: false)
        return output
    }

    /// The failure entry of a crypto call refused `404` before it ran, while its permission was decided (on
    /// either door): the key named does not exist, so it is named as asked (`key`, and `keyId` when the name
    /// is one; an audit review found no entry for a decrypt of a deleted key's ciphertexts). Calls that
    /// change no key only: others write nothing for a `404` decided before their intent.
    /// `key`: the entry's fields naming it (`asAsked`, or the AWS door's own).
    func cryptoKeyNotFound(_ permission: Permission, who: [(String, String)], key: [(String, String)]) async {
        guard let operation = Self.cryptoOperations[permission] else { return }
        await cryptoRefused(operation, who: who, key: key, code: ErrorCode.keyNotFound.rawValue)
    }

    /// A crypto call refused before its operation ran, for what it named (a key that does not exist; on the
    /// AWS door a `KeyId` that is not the ciphertext's key): `crypto.OPERATION`, `failure`, with `code`. Best
    /// effort, as the refusal's answer does not depend on it.
    func cryptoRefused(_ operation: String, who: [(String, String)], key: [(String, String)], code: String) async {
        await log.recordBestEffort(AuditEvent("crypto.\(operation)", outcome: "failure", who + key + [("code", code)]))
    }

    /// A key no decision named, as the request named it (`shownName`): `key`, and `keyId` when the name
    /// is one.
    static func asAsked(_ key: String) -> [(String, String)] {
        [("key", shownName(key))] + (isServerKeyId(key) ? [("keyId", key)] : [])
    }

    /// A key id of the form the server makes (`key_` and 22 base64url characters, 16 bytes), exactly: the
    /// ids' parser takes 1 to 60 characters after `key_`, where a token would fit (a review).
    static func isServerKeyId(_ name: String) -> Bool { AWSKeyId.uuid(fromNative: name) != nil }

    /// A name a request gave for a key, as an entry may hold it: a key id, or an alias of at most
    /// `Echo.maxShownLength` bytes, as it is; anything else by its length only (what may be shown, not a
    /// proof of no secret: a short base64 text fits an alias's form). A name of no key may be a
    /// secret pasted in the wrong place (a token, a plaintext, an AWS secret access key), and the log is
    /// signed and kept (a review of the entries for missing keys: a swapped keyId and plaintext was
    /// recorded whole), as the request log hides such a path segment (`LoggedPath`).
    static func shownName(_ name: String) -> String {
        isServerKeyId(name) || (Echo.mayShow(name) && KeyIdentifier.isAliasSyntax(name)) ? name : notShown(name)
    }

    /// A client name a request gave, as an entry may hold it: a clientId, or a name of at most
    /// `Echo.maxShownLength` bytes; a longer one by its length (a name's grammar admits a lowercase hex
    /// secret, and any enrolled client can cause a `clients:manage` denial).
    static func shownClient(_ reference: String) -> String {
        ClientRecord.isClientId(reference) || Echo.mayShow(reference) ? reference : notShown(reference)
    }

    /// A left-out denial's name in `suppressedKeys`: its non-empty parts, nil when none (a denial naming no
    /// permission and no key is counted, not named).
    static func leftOutName(_ parts: [String]) -> String? {
        let name = parts.filter { !$0.isEmpty }.joined(separator: " ")
        return name.isEmpty ? nil : name
    }

    /// What an entry holds instead of a name it may not show: its length.
    static func notShown(_ text: String) -> String { "(not shown: \(text.utf8.count) bytes)" }

    /// The crypto permissions and the entry each one's call writes.
    static let cryptoOperations: [Permission: String] = [
        .cryptoEncrypt: "encrypt", .cryptoDecrypt: "decrypt", .cryptoRewrap: "rewrap", .cryptoDatakey: "datakey",
    ]

    /// An event that must not hold the request up (session events).
    func note(_ event: AuditEvent) async {
        await log.recordBestEffort(event)
    }

    /// A failed key exchange (`session.key-exchange`, `failure`), which needs no
    /// authentication to cause (the client check comes before any RSA work, so
    /// `client_not_authenticated` costs no more than the others): written in
    /// full once a minute for each address (an IPv6 /64), code and `clientKey`
    /// as sent, at most ten a minute for each address and ten a second in all, each with `suppressed`, the number
    /// of the address's failures left out since its last line (a review: a loop of junk
    /// exchanges wrote a line each, and a full disk refuses every audited
    /// operation).
    func keyExchangeFailed(
        _ fields: [(String, String)], host: String, code: ErrorCode, clientKey: String?, at now: Date
    ) async {
        let key = "\(code.rawValue):\(host):\(clientKey ?? "")"
        // The address's own budget too: the clientKey is the caller's to vary, and a probe wrote ten
        // lines a second from one host by changing it on every request.
        guard let skipped = keyExchangeFailures.admit(key, group: host, now: now) else { return }
        await log.recordBestEffort(
            AuditEvent("session.key-exchange", outcome: "failure", fields + [("suppressed", "\(skipped)")]))
    }

    /// A `403 permission_denied` (`permission.denied`), written in the background and thinned: once a
    /// minute for each client, permission and key (`keyId`, the key the denied name named when the denial
    /// knew it, from its own resolution: `KMSError.deniedKeyId`; else the name as asked), at most ten a
    /// minute for the client and ten
    /// a second in all, with `suppressed`, the client's denials left out since its last line, and
    /// `suppressedKeys`, the first eight and last eight permissions and keys among them (a client must not hide the key it
    /// was after behind ten junk denials: the diff review). A review found every denial written in
    /// full: a device enrolled with no grant on what it asks for wrote about 350 bytes a request, and a
    /// full disk refuses every audited operation of every client. `client`: the enrolled client's id
    /// (grants are checked only with client authentication; the session's hash is the fallback).
    /// `target`: a `clients:manage` denial's target client (its field), which then stands for the key in the
    /// thinning and in `suppressedKeys` (`client NAME`), so each target has its own entry a minute and a
    /// later one is named among those left out (a review: a device could spend its entry on the list).
    func permissionDenied(
        _ who: [(String, String)], client: String, permission: Permission?, key: String,
        target: (String, String)? = nil, keyId: String? = nil, at now: Date
    ) {
        let permission = permission?.rawValue ?? ""
        let named = target.map { "client \($0.1)" } ?? key
        // The key named, when the denial knew it: names shown by their length alone (two long aliases of one
        // length) are then told apart in the thinning and in `suppressedKeys` too (the review of d502b00).
        let keyId = keyId.flatMap { $0 == key ? nil : $0 }
        // The limiter holds its keys for a minute or more: the name as asked may be a megabyte.
        let remembered = keyId ?? String(decoding: named.utf8.prefix(256), as: UTF8.self)
        guard
            let admitted = denials.admit(
                "\(client):\(permission):\(remembered)", group: client,
                naming: Self.leftOutName(
                    [permission, String(decoding: named.utf8.prefix(64), as: UTF8.self)] + (keyId.map { [$0] } ?? [])),
                now: now)
        else { return }
        var fields = who + [("permission", permission)] + (target.map { [$0] } ?? [("key", key)])
        if let keyId { fields.append(("keyId", keyId)) }
        fields.append(("suppressed", "\(admitted.skipped)"))
        if !admitted.leftOut.isEmpty { fields.append(("suppressedKeys", admitted.leftOut.joined(separator: ", "))) }
        let log = self.log
        Task { [fields] in await log.recordBestEffort(AuditEvent("permission.denied", outcome: "failure", fields)) }
    }

    /// A refused AWS signature (`aws.auth-refused`), written in the background and thinned: once a
    /// minute for each address and access key id it claims, at most ten a minute for the host (`host`, an
    /// IPv6 /64; the address until 2026-12-06, so one /64 rotating its addresses took the ten a second)
    /// and ten a second in all, with `suppressed`, the host's (for a live id, the id's) refusals left out since
    /// its last line, so
    /// junk headers cannot fill the disk. The access key id is recorded when it is one in form (`AKIA` and
    /// 16 base32 characters; anything else might be a secret pasted in the wrong place): a probe found
    /// that a leaked id tried with guessed secrets could not be told from other refusals. A refusal of a
    /// live id's signature (`accessKeyFound`: the id is an access key of the registry, the signature wrong)
    /// is thinned by a limiter of its own (once a minute per address and id, ten a minute per id, ten a
    /// second in all), which ids no access key has, allowlist refusals and other live ids' refusals (but
    /// sixty ids' together) cannot spend (reviews: junk ids sent around a leaked one kept it out of the log;
    /// `suppressedKeys` then names addresses). With `suppressedKeys`, the first four and last
    /// four `ADDRESS` or `ADDRESS ID` among the refusals `suppressed` counts.
    func authRefused(
        address: String, host: String, code: String, accessKeyId: String?, accessKeyFound: Bool, at now: Date
    ) {
        let claimed = accessKeyId.flatMap { AccessKeyRecord.isAccessKeyId($0) ? $0 : nil }
        // A live id's refusals are grouped by the id (the review of d502b00: by host, a client holding any
        // live id could spend the ten a second from many hosts); the registry bounds how many ids there are.
        let found = accessKeyFound ? claimed : nil
        guard
            let admitted = (found == nil ? refusals : foundRefusals).admit(
                "aws:\(address):\(claimed ?? "")", group: found.map { "id:" + $0 } ?? "aws:" + host,
                naming: found == nil ? claimed.map { "\(address) \($0)" } ?? address : address, now: now)
        else { return }
        var fields = [("client", address), ("code", code)]
        if let claimed { fields.append(("accessKeyId", claimed)) }
        fields.append(("suppressed", "\(admitted.skipped)"))
        if !admitted.leftOut.isEmpty { fields.append(("suppressedKeys", admitted.leftOut.joined(separator: ", "))) }
        let log = self.log
        Task { [fields] in await log.recordBestEffort(AuditEvent("aws.auth-refused", outcome: "refused", fields)) }
    }

    /// An allowlist refusal: at most one entry per address a minute, ten a minute per host (`host`, an
    /// IPv6 /64) and ten a second in all, written in the background, so a flood cannot fill the disk; with
    /// `suppressed`, the host's refusals left out since its last entry. The host's budget since
    /// 2026-12-06: one /64 rotating its addresses took the ten a second, which the AWS door's refused
    /// signatures share (a review; a first fix thinned by host alone, naming one address of a /64 that
    /// may be a whole LAN). With `suppressedKeys`, the first four and last four addresses among the refusals
    /// `suppressed` counts, so a LAN's eleventh refused address in a minute is named by the host's next entry.
    func refused(address: String, host: String, at now: Date) {
        guard let admitted = refusals.admit(address, group: "refused:" + host, naming: address, now: now) else {
            return
        }
        var fields = [("client", address), ("suppressed", "\(admitted.skipped)")]
        if !admitted.leftOut.isEmpty { fields.append(("suppressedKeys", admitted.leftOut.joined(separator: ", "))) }
        let log = self.log
        Task { [fields] in await log.recordBestEffort(AuditEvent("access.refused", outcome: "refused", fields)) }
    }
}

/// Thins out entries that anyone allowed to connect can cause without
/// authenticating (per key, usually an address, and in all), with bounded memory:
/// at most one entry per key a minute and ten a second in all; with a `group`
/// (the address, when the key also holds what the client sent), at most
/// `perGroupPerMinute` entries a minute for the group as well.
final class RefusalLimiter: Sendable {
    private struct Window {
        var start: Date
        var written: Int
        /// The group's entries left out since its last written one, whatever their key.
        var skipped = 0
        /// What those entries would have named (`LeftOutNames.keep`), handed to the group's next entry.
        var leftOut: [String] = []
    }

    private struct State {
        /// When each key's last entry was written, and how many were left out since.
        var lastByKey: [String: (written: Date, skipped: Int)] = [:]
        /// Entries written for each group in its current minute.
        var groups: [String: Window] = [:]
        var secondStart = Date.distantPast
        var inSecond = 0
    }

    private let state = Mutex(State())
    private let perGroupPerMinute: Int
    /// How many names left out a group keeps for its next entry: the first and last halves.
    private let namesKept: Int

    init(perGroupPerMinute: Int = 10, namesKept: Int = 16) {
        self.perGroupPerMinute = perGroupPerMinute
        self.namesKept = namesKept
    }

    func allow(_ key: String, now: Date) -> Bool { admit(key, now: now) != nil }

    func admit(_ key: String, group: String? = nil, now: Date) -> Int? {
        admit(key, group: group, naming: nil, now: now)?.skipped
    }

    /// nil: leave this entry out. Otherwise how many entries were left out
    /// since the last written one: of the `group` when one is given (a review:
    /// counted per key, a flood varying its keys showed `suppressed` 0 on every
    /// line), else of `key`. A key or group is remembered from its first written
    /// entry, so those refused by a cap before it are not counted; all are
    /// forgotten when 10,000 are held. `name`: what a left-out entry of a
    /// remembered group would have named, kept with its count (the first and
    /// last halves of `namesKept` distinct, `LeftOutNames.keep`) and returned by the group's
    /// next written entry, under the same lock, so the names are those the count
    /// counts (a review: kept apart, a refusal between the two was named by one
    /// entry and counted by the next). Made only for an entry left out of a remembered group: a flood's
    /// written entries and those of no group build no name.
    func admit(
        _ key: String, group: String?, naming name: @autoclosure () -> String?, now: Date
    ) -> (skipped: Int, leftOut: [String])? {
        state.withLock { state in
            if now.timeIntervalSince(state.secondStart) >= 1 || now < state.secondStart {
                state.secondStart = now
                state.inSecond = 0
            }
            let last = state.lastByKey[key]
            var window = group.flatMap { state.groups[$0] }
            if let current = window, now.timeIntervalSince(current.start) >= 60 || now < current.start {
                window = nil
            }
            guard state.inSecond < 10, (window?.written ?? 0) < perGroupPerMinute,
                // A clock stepped back lets the key in again, as the windows above do (a review: it stayed
                // quiet for the step's length).
                last.map({ now.timeIntervalSince($0.written) >= 60 || now < $0.written }) ?? true
            else {
                if let last { state.lastByKey[key] = (last.written, last.skipped + 1) }
                if let group, var held = state.groups[group] {
                    held.skipped += 1
                    if let name = name() {
                        LeftOutNames.keep(
                            String(decoding: name.utf8.prefix(128), as: UTF8.self), in: &held.leftOut, max: namesKept)
                    }
                    state.groups[group] = held
                }
                return nil
            }
            let held = group.flatMap { state.groups[$0] }
            if state.lastByKey.count >= 10_000, last == nil { state.lastByKey.removeAll(keepingCapacity: true) }
            state.lastByKey[key] = (now, 0)
            if let group {
                if state.groups.count >= 10_000, state.groups[group] == nil {
                    state.groups.removeAll(keepingCapacity: true)
                }
                state.groups[group] = Window(start: window?.start ?? now, written: (window?.written ?? 0) + 1)
            }
            state.inSecond += 1
            return group == nil ? (last?.skipped ?? 0, []) : (held?.skipped ?? 0, held?.leftOut ?? [])
        }
    }
}

/// The rule of the names a thinned kind of entry left out (`RefusalLimiter`'s `naming`, shown as
/// `suppressedKeys`): distinct, the first half and the last half of `max` since the group's last entry, so
/// the next entry can name them (the last ones too: sixteen junk names sent first would otherwise fill the
/// list, the final review). Bounded: at most 16 a group (8 for refusals, which need no authentication),
/// each at most 128 bytes (the field is exempt from the audit's 256-byte cap), forgotten with the
/// limiter's groups at 10,000.
enum LeftOutNames {
    static func keep(_ name: String, in list: inout [String], max: Int = 16) {
        guard max > 0, !list.contains(name) else { return }
        if list.count >= max { list.remove(at: max / 2) }
        list.append(name)
    }
}
