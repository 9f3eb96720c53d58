import Foundation
import KMSCore
import KMSProtocol

/// `CreateAlias`, `UpdateAlias`, `DeleteAlias`, `ListAliases`: lifecycle-v1's
/// alias records and rule 9.2's permissions, with AWS's names (`alias/<name>`).
extension AWSOperations {
    /// What a request does with an alias: the grammar of new names applies to
    /// `create`; the UUID rule (`KeyRing.checkNotUUIDShaped`) to `create` and `move`.
    enum AliasUse { case create, move, delete }

    /// The native alias of an `AliasName`.
    func aliasName(_ text: String, _ use: AliasUse) throws(AWSFault) -> String {
        // The same words as the native door's (a review: a name of this grammar that starts with key_ or is a
        // path word was told only the grammar).
        let invalid = AWSFault(
            "InvalidAliasNameException",
            "An alias name is alias/ followed by [A-Za-z0-9][A-Za-z0-9._-]{0,63}, not starting with key_, not generate or rotate (not alias/aws/…)."
        )
        guard let rest = text.bytesAfter(prefix: "alias/"), case .alias(let name) = partition.aliasName(rest) else {
            throw invalid
        }
        guard use == .create ? KeyIdentifier.isValidAlias(name) : KeyIdentifier.isAliasSyntax(name) else {
            throw invalid
        }
        if use != .delete, KeyIdentifier.hasUUIDShape(name) {
            throw AWSFault(
                "InvalidAliasNameException",
                use == .create
                    ? "An alias name may not have a UUID's form here: the native door would read it as an alias, not a KeyId."
                    : "An alias of a UUID's form cannot be moved here (the native door reads it as an alias, not a KeyId); delete it instead."
            )
        }
        return name
    }

    /// `keys:manage` on the alias as a name.
    func authorizeName(_ name: String, _ call: Call) throws(AWSFault) {
        guard checkGrants, !KeyRing.mayManageName(name, grants: call.caller.client.grants) else {
            return
        }
        // As the caller wrote it (`alias/NAME`): a bare name is no key's name, and was shown by its length.
        noteDenied(.keysManage, "alias/" + name, call)
        throw AWSFault(
            "AccessDeniedException", "permission keys:manage is not granted for alias \(AWSFault.shown(name))")
    }

    /// An alias never widens its own client's access (`KeyRing.permissionsGained`).
    func checkNoGain(naming target: KeyRecord, as name: String, key reference: String, _ call: Call) throws(AWSFault) {
        guard checkGrants else { return }
        let gained = KeyRing.permissionsGained(naming: target, as: name, grants: call.caller.client.grants)
        guard !gained.isEmpty else { return }
        noteDenied(gained[0], reference, call, keyId: target.keyId)
        throw AWSFault(
            "AccessDeniedException",
            KeyRing.aliasWouldGrant(gained, alias: AWSFault.shown(name), key: reference).message)
    }

    /// The alias record, and `keys:manage` on the key it names judged without it.
    func currentAlias(_ name: String, _ call: Call) async throws(AWSFault) -> AliasRecord {
        let current = try await native { () throws(KMSError) in try await keys.aliasRecord(name) }
        guard checkGrants else { return current }
        let grants = call.caller.client.grants
        let allowed = try await native { () throws(KMSError) in
            try await keys.mayManageCurrentKey(of: current, grants: grants)
        }
        guard !allowed else { return current }
        noteDenied(.keysManage, "alias/" + name, call, keyId: current.keyId)
        throw AWSFault(
            "AccessDeniedException",
            "permission keys:manage is not granted for the key alias \(AWSFault.shown(name)) names")
    }

    /// `TargetKeyId`: a key (an id, UUID or key ARN), not an alias.
    /// `TargetKeyId`, validated (a `400` before any `403`).
    func targetReference(_ input: inout AWSInput) throws(AWSFault) -> String {
        let text = try input.keyReference("TargetKeyId")
        guard case .keyId = partition.reference(text) else {
            throw AWSFault.validation("TargetKeyId must name a key (its id or ARN), not an alias.")
        }
        return text
    }

    func targetKey(_ text: String, _ call: Call) async throws(AWSFault) -> KeyRecord {
        let record = try await key(text, .keysManage, call)
        guard record.state != .pendingDeletion else { throw AWSFault.from(.keyPendingDeletion, keyArn: arn(record)) }
        return record
    }

    func createAlias(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let name = try aliasName(try input.string("AliasName"), .create)
        let reference = try targetReference(&input)
        try authorizeName(name, call)
        let target = try await targetKey(reference, call)
        try checkNoGain(naming: target, as: name, key: reference, call)
        if call.dryRun { throw Self.dryRun }
        _ = try await native { () throws(KMSError) in
            // `key` as asked (it resolved: `targetKey`), as the native door records it; the outcome adds `keyId`.
            try await audit.durableChange("alias.create", [("alias", name), ("key", reference)], who: call.who) {
                () throws(KMSError) in
                try await keys.createAlias(name, for: target)
            } result: { alias in
                [("keyId", alias.keyId)]
            }
        }
        return .object([])
    }

    func updateAlias(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let name = try aliasName(try input.string("AliasName"), .move)
        let reference = try targetReference(&input)
        try authorizeName(name, call)
        return try await Self.againIfRaced { () async throws(AWSFault) in
            let current = try await currentAlias(name, call)
            let target = try await targetKey(reference, call)
            if target.keyId != current.keyId { try checkNoGain(naming: target, as: name, key: reference, call) }
            if call.dryRun { throw Self.dryRun }
            guard target.keyId != current.keyId else { return .object([]) }
            _ = try await native { () throws(KMSError) in
                try await audit.durableChange(
                    "alias.move", [("alias", name), ("fromKeyId", current.keyId), ("key", reference)], who: call.who
                ) { () throws(KMSError) in
                    try await keys.moveAlias(current, to: target)
                } result: { alias in
                    [("keyId", alias.keyId)]
                }
            }
            return .object([])
        }
    }

    /// `attempt` again when the alias changed between its read and the write, as the native door
    /// does (`KeyRing.againIfAliasChanged`; the fault keeps the conflict's flag).
    private static func againIfRaced<T>(_ attempt: () async throws(AWSFault) -> T) async throws(AWSFault) -> T {
        try await KeyRing.againIfAliasChanged(attempt) { $0.isAliasConflict }
    }

    func deleteAlias(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let name = try aliasName(try input.string("AliasName"), .delete)
        try authorizeName(name, call)
        try await Self.againIfRaced { () async throws(AWSFault) in
            let current = try await currentAlias(name, call)
            if call.dryRun { throw Self.dryRun }
            try await native { () throws(KMSError) in
                try await audit.durableChange(
                    "alias.delete", [("alias", name), ("keyId", current.keyId)], who: call.who
                ) { () throws(KMSError) in
                    try await keys.deleteAlias(current)
                } result: { _ in
                    []
                }
            }
        }
        return .object([])
    }

    func listAliases(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let limit = try input.optionalInteger("Limit", in: 1...100) ?? 50
        let marker = try Self.marker(try input.optionalString("Marker"), isName: KeyIdentifier.isAliasSyntax)
        // Rule 9.3: an unknown or unreadable key lists nothing (no lookup that tells them apart).
        var keyId: String?
        if let text = try input.optionalKeyReference("KeyId") {
            switch partition.reference(text) {
            case .keyId(let id): keyId = id
            case .alias(let name): keyId = name
            case .invalid, .invalidAlias: return .object([("Aliases", .array([])), ("Truncated", .bool(false))])
            }
        }
        let grants = checkGrants ? call.caller.client.grants : nil
        let page = try await native { () throws(KMSError) in
            try await keys.listAliases(after: marker, limit: limit, keyId: keyId) { names in
                grants.map { names.allowed(.keysRead, by: $0) } ?? true
            }
        }
        var members: [(String, JSONValue)] = [
            (
                "Aliases",
                .array(
                    page.aliases.map { alias in
                        .object([
                            ("AliasName", .string("alias/" + alias.alias)),
                            ("AliasArn", .string(partition.aliasArn(alias.alias))),
                            ("TargetKeyId", .string(uuid(alias.keyId))),
                            ("CreationDate", .number(Self.epochText(alias.createdAt))),
                            ("LastUpdatedDate", .number(Self.epochText(alias.updatedAt))),
                        ])
                    })
            ), ("Truncated", .bool(page.next != nil)),
        ]
        if let next = page.next { members.append(("NextMarker", .string(next))) }
        return .object(members)
    }

    static func epochText(_ text: String) -> String {
        String(format: "%.3f", (Timestamp.parse(text) ?? Date(timeIntervalSince1970: 0)).timeIntervalSince1970)
    }
}
