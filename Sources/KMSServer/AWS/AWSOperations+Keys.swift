import Foundation
import KMSCore
import KMSProtocol

/// Key management, aliases, tags and policies of the AWS door.
extension AWSOperations {
    func keyMetadata(_ record: KeyRecord) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("AWSAccountId", .string(partition.accountId)), ("KeyId", .string(uuid(record.keyId))),
            ("Arn", .string(arn(record))), ("CreationDate", Self.epoch(record.createdAt)),
            ("Enabled", .bool(record.state == .enabled)), ("Description", .string(record.description)),
            ("KeyUsage", .string("ENCRYPT_DECRYPT")),
            (
                "KeyState",
                .string(
                    ["enabled": "Enabled", "disabled": "Disabled", "pending_deletion": "PendingDeletion"][
                        record.state.rawValue] ?? "Disabled")
            ),
        ]
        if let date = record.deletionDate { members.append(("DeletionDate", Self.epoch(date))) }
        if let days = record.pendingWindowDays {
            members.append(("PendingDeletionWindowInDays", .integer(Int64(days))))
        }
        members += [
            ("Origin", .string("AWS_KMS")), ("KeyManager", .string("CUSTOMER")),
            ("KeySpec", .string("SYMMETRIC_DEFAULT")), ("CustomerMasterKeySpec", .string("SYMMETRIC_DEFAULT")),
            ("EncryptionAlgorithms", .array([Self.algorithm])), ("MultiRegion", .bool(false)),
        ]
        return .object(members)
    }

    /// A lifecycle change, audited like the native routes (durable intent, then result), with `key` the
    /// name as asked (`asked`, which resolved to `record`) and `keyId` the key's, as the native door writes them.
    /// With `DryRun`, the change is applied to a copy only (its state checks), then `412`.
    func change(_ change: KeyChange, _ record: KeyRecord, _ call: Call, asked: String) async throws(AWSFault)
        -> KeyRecord
    {
        if call.dryRun {
            _ = try await native(arn(record)) { () throws(KMSError) in try await keys.preview(change, on: record.keyId)
            }
            throw Self.dryRun
        }
        return try await native(arn(record)) { () throws(KMSError) in
            // The 409s, the clock and a no-op, before the intent entry records anything.
            let (current, changes) = try await keys.preview(change, on: record.keyId)
            guard changes else { return current }
            return try await audit.durableChange(
                change.auditType, [("key", asked), ("keyId", record.keyId)], who: call.who
            ) {
                () throws(KMSError) in
                try await keys.change(change, reportingWriteOn: record.keyId)
            } result: { outcome in
                KeyRing.changeFields(outcome)
            }.record
        }
    }

    func simpleChange(_ input: inout AWSInput, _ call: Call, _ kind: KeyChange) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let record = try await key(reference, .keysManage, call)
        _ = try await change(kind, record, call, asked: reference)
        return .object([])
    }

    func createKey(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        try input.refuseUnsupported()
        if let usage = try input.optionalString("KeyUsage"), !usage.bytesEqual("ENCRYPT_DECRYPT") {
            throw AWSFault.unsupported("KeyUsage \(AWSFault.shown(usage))")
        }
        for name in ["KeySpec", "CustomerMasterKeySpec"] {
            if let spec = try input.optionalString(name), !spec.bytesEqual("SYMMETRIC_DEFAULT") {
                throw AWSFault.unsupported("\(name) \(AWSFault.shown(spec))")
            }
        }
        if let origin = try input.optionalString("Origin"), !origin.bytesEqual("AWS_KMS") {
            throw AWSFault.unsupported("Origin \(AWSFault.shown(origin))")
        }
        let description = try input.optionalString("Description") ?? ""
        do {
            try LabelRules.checkDescription(description, field: "Description")
        } catch {
            throw AWSFault.validation(error.message)
        }
        let tags = try input.tags() ?? [:]
        let policy = try Self.policy(try input.optionalString("Policy"))
        if checkGrants {
            do {
                try KeyAccess.checkCreate(alias: nil, grants: call.caller.client.grants)
            } catch {
                noteDenied(.keysCreate, "", call)  // no key named, as on the native door
                // In the door's words: CreateKey names no alias, so only a grant on * covers it (an AWS user's
                // walkthrough read the native "for a key without an alias" and had no alias to give).
                throw AWSFault(
                    "AccessDeniedException",
                    "This access key's client is not granted keys:create on * (CreateKey makes a key without an alias, which only a grant on * covers; kms grants: docs/identity.md)."
                )
            }
        }
        // The key limit before the intent entry, and for DryRun too (the second review).
        try await native { () throws(KMSError) in try await keys.checkKeyRoom() }
        if try input.dryRun() { throw Self.dryRun }
        let record = try await native { () throws(KMSError) in
            try await audit.durableChange("key.generate", [], who: call.who) { () throws(KMSError) in
                try await keys.generate(
                    alias: nil, labels: KeyLabels(description: description, set: tags), policy: policy,
                    roomChecked: true)
            } result: { record in
                [("keyId", record.keyId), ("version", "1")]
            }
        }
        return .object([("KeyMetadata", keyMetadata(record))])
    }

    /// A policy is kept verbatim: a JSON object of at most 32,768 bytes.
    static func policy(_ text: String?) throws(AWSFault) -> String? {
        guard let text else { return nil }
        guard text.utf8.count <= 32_768, case .object? = try? JSONParser.parse(Data(text.utf8)) else {
            throw AWSFault(
                "MalformedPolicyDocumentException", "The policy must be a JSON object of at most 32,768 bytes.")
        }
        return text
    }

    func defaultPolicy() -> String {
        """
        {"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",\
        "Principal":{"AWS":"arn:aws:iam::\(partition.accountId):root"},"Action":"kms:*","Resource":"*"}]}
        """
    }

    func describeKey(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let record = try await key(try input.keyReference("KeyId"), .keysRead, call)
        return .object([("KeyMetadata", keyMetadata(record))])
    }

    /// `Marker`: the last native key id of the previous page.
    func listKeys(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let limit = try input.optionalInteger("Limit", in: 1...1000) ?? 100
        let marker = try Self.marker(try input.optionalString("Marker"), isName: KeyIdentifier.isKeyId)
        let grants = checkGrants ? call.caller.client.grants : nil
        let page = try await native { () throws(KMSError) in
            try await keys.listIds(after: marker, limit: limit) { record in
                grants.map { KeyAccess.Names(keyId: record.keyId, aliases: record.aliases).allowed(.keysRead, by: $0) }
                    ?? true
            }
        }
        var members: [(String, JSONValue)] = [
            (
                "Keys",
                .array(
                    page.keyIds.map {
                        .object([
                            ("KeyId", .string(uuid($0))), ("KeyArn", .string(partition.keyArn(native: $0))),
                        ])
                    })
            ), ("Truncated", .bool(page.next != nil)),
        ]
        if let next = page.next { members.append(("NextMarker", .string(next))) }
        return .object(members)
    }

    /// A `Marker` is the last name of the previous page, as `NextMarker` gave
    /// it: a native key id (ListKeys) or alias name (ListAliases). Anything
    /// else cannot be one this KMS gave (`InvalidMarkerException`); a
    /// well-formed name starts the page after it, whether or not it exists
    /// now (its key may have been deleted between the pages).
    static func marker(_ text: String?, isName: (String) -> Bool) throws(AWSFault) -> String? {
        guard let text else { return nil }
        guard isName(text) else { throw AWSFault("InvalidMarkerException", "The Marker is not one this KMS gave.") }
        return text
    }

    func cancelKeyDeletion(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let record = try await key(reference, .keysManage, call)
        _ = try await change(.cancelDeletion, record, call, asked: reference)
        return .object([("KeyId", .string(arn(record)))])
    }

    func scheduleKeyDeletion(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let days = try input.optionalInteger("PendingWindowInDays", in: 7...30) ?? 30
        let record = try await key(reference, .keysManage, call)
        let changed = try await change(.scheduleDeletion(days: days), record, call, asked: reference)
        return .object([
            ("KeyId", .string(arn(record))), ("DeletionDate", Self.epoch(changed.deletionDate ?? Date())),
            ("KeyState", .string("PendingDeletion")), ("PendingWindowInDays", .integer(Int64(days))),
        ])
    }

    func enableKeyRotation(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let days = try input.optionalInteger("RotationPeriodInDays", in: 90...2560) ?? 365
        let record = try await key(reference, .keysManage, call)
        _ = try await change(.rotation(periodDays: days), record, call, asked: reference)
        return .object([])
    }

    /// AWS refuses it on a disabled key (`DisabledException`, its key-state table), where the
    /// native route may clear a disabled key's schedule (lifecycle-v1 rule 6): the door follows AWS.
    func disableKeyRotation(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let record = try await key(reference, .keysManage, call)
        if record.state == .disabled { throw AWSFault.from(KMSError.keyDisabled, keyArn: arn(record)) }
        _ = try await change(.rotation(periodDays: nil), record, call, asked: reference)
        return .object([])
    }

    func getKeyRotationStatus(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let record = try await key(try input.keyReference("KeyId"), .keysRead, call)
        // AWS answers false while a key is pending deletion, and the schedule again after
        // CancelKeyDeletion (which the record keeps): nothing will rotate a key about to go.
        let schedule = record.state == .pendingDeletion ? nil : record.rotationPeriodDays
        var members: [(String, JSONValue)] = [
            ("KeyRotationEnabled", .bool(schedule != nil)), ("KeyId", .string(arn(record))),
        ]
        if let days = schedule {
            members.append(("RotationPeriodInDays", .integer(Int64(days))))
            if let next = record.nextRotationAt { members.append(("NextRotationDate", Self.epoch(next))) }
        }
        return .object(members)
    }

    func rotateKeyOnDemand(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let record = try await key(reference, .keysRotate, call)
        let dryRun = try input.dryRun()
        // As the rotation checks (enabled, under the version limit, the clock): for DryRun, and before the
        // intent entry records anything.
        try await native(arn(record)) { () throws(KMSError) in try await keys.checkRotation(record) }
        if dryRun { throw Self.dryRun }
        _ = try await native(arn(record)) { () throws(KMSError) in
            return try await audit.durableChange(
                "key.rotate", [("key", reference), ("keyId", record.keyId)], who: call.who
            ) {
                () throws(KMSError) in
                try await keys.rotate(record.keyId, read: record)
            } result: { record in
                [("keyId", record.keyId), ("version", "\(record.activeVersion)")]
            }
        }
        return .object([("KeyId", .string(uuid(record.keyId)))])
    }

    // MARK: Tags, description, policies

    func tagResource(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        guard let tags = try input.tags() else { throw AWSFault.validation("Tags is required") }
        let record = try await key(reference, .keysManage, call)
        _ = try await labels(KeyLabels(set: tags), record, call, asked: reference)
        return .object([])
    }

    func untagResource(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let keysToRemove = try input.stringList("TagKeys")
        do {
            try LabelRules.checkTags([:], remove: keysToRemove)
        } catch {
            throw AWSFault("TagException", error.message)
        }
        let record = try await key(reference, .keysManage, call)
        _ = try await labels(KeyLabels(remove: keysToRemove), record, call, asked: reference)
        return .object([])
    }

    /// Tag changes: more than 50 after the change, or a TagKey that reads the same as a stored one, is a
    /// `TagException`. A key pending deletion is refused for its state first, as the native door and
    /// AWS do: both judgements depend on the stored tags, which such a key may not change at all.
    func labels(_ labels: KeyLabels, _ record: KeyRecord, _ call: Call, asked: String) async throws(AWSFault)
        -> KeyRecord
    {
        if record.state != .pendingDeletion {
            do {
                _ = try labels.applied(to: record.tags)
            } catch {
                throw AWSFault("TagException", error.message)
            }
        }
        do {
            return try await change(.labels(labels), record, call, asked: asked)
        } catch  where error.code == "ValidationException" {
            // The same refusal judged again on the record as changed meanwhile (a tag added by another call).
            throw AWSFault("TagException", error.message)
        }
    }

    func listResourceTags(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let limit = try input.optionalInteger("Limit", in: 1...50) ?? 50
        let marker = try input.optionalString("Marker")
        let record = try await key(reference, .keysRead, call)
        if let marker, !record.tags.keys.contains(where: { $0.bytesEqual(marker) }) {
            throw AWSFault("InvalidMarkerException", "The Marker is not one this KMS gave.")
        }
        let sorted = record.tags.sorted { $0.key.bytesPrecede($1.key) }
        let rest = sorted.filter { tag in marker.map { $0.bytesPrecede(tag.key) } ?? true }
        let page = Array(rest.prefix(limit))
        var members: [(String, JSONValue)] = [
            ("Tags", .array(page.map { .object([("TagKey", .string($0.key)), ("TagValue", .string($0.value))]) })),
            ("Truncated", .bool(rest.count > limit)),
        ]
        if rest.count > limit, let last = page.last { members.append(("NextMarker", .string(last.key))) }
        return .object(members)
    }

    func updateKeyDescription(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        let description = try input.string("Description")
        do {
            try LabelRules.checkDescription(description, field: "Description")
        } catch {
            throw AWSFault.validation(error.message)
        }
        let record = try await key(reference, .keysManage, call)
        _ = try await change(.labels(KeyLabels(description: description)), record, call, asked: reference)
        return .object([])
    }

    static func checkPolicyName(_ name: String?) throws(AWSFault) {
        guard name == nil || name?.bytesEqual("default") == true else {
            throw AWSFault("NotFoundException", "The only key policy is named default.")
        }
    }

    func getKeyPolicy(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        try Self.checkPolicyName(try input.optionalString("PolicyName"))
        let record = try await key(reference, .keysRead, call)
        return .object([("Policy", .string(record.policy ?? defaultPolicy())), ("PolicyName", .string("default"))])
    }

    func putKeyPolicy(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        let reference = try input.keyReference("KeyId")
        try Self.checkPolicyName(try input.optionalString("PolicyName"))
        guard let policy = try Self.policy(try input.string("Policy")) else { return .object([]) }
        let record = try await key(reference, .keysManage, call)
        _ = try await change(.policy(policy), record, call, asked: reference)
        return .object([])
    }

    func listKeyPolicies(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        _ = try await key(try input.keyReference("KeyId"), .keysRead, call)
        return .object([("PolicyNames", .array([.string("default")])), ("Truncated", .bool(false))])
    }
}
