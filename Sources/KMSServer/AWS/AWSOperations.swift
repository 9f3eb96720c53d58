import Foundation
import KMSCore
import KMSProtocol

/// The 28 operations of aws-kms-v1 section 6, each on the native core (the
/// same keys, lifecycle and audit as the native API). Everything here
/// answers a JSON object or throws an `AWSFault`.
struct AWSOperations: Sendable {
    let keys: KeyRing
    let audit: Auditor
    let partition: AWSPartition
    /// With `KMS_CLIENT_AUTH=off`, grants are not checked (signatures still are).
    let checkGrants: Bool

    /// One request's caller and where it came from.
    struct Call: Sendable {
        let caller: AWSCaller
        let address: String
        /// `DryRun: true`, read for every operation: one that changes something stops
        /// after its checks (`412`), whether or not AWS's model gives it the member.
        let dryRun: Bool
        /// The answer's `x-amzn-RequestId`, which the door's request log line carries too.
        let requestId: String
        /// The fields that say who asked, made once (a call writes one to three entries).
        let who: [(String, String)]

        init(caller: AWSCaller, address: String, dryRun: Bool = false, requestId: String = "") {
            self.caller = caller
            self.address = address
            self.dryRun = dryRun
            self.requestId = requestId
            who = caller.who(address: address) + [("requestId", requestId)]
        }
    }

    typealias Operation = @Sendable (AWSOperations, inout AWSInput, Call) async throws(AWSFault) -> JSONValue

    static let table: [String: Operation] = [
        "Encrypt": { ops, input, call throws(AWSFault) in try await ops.encrypt(&input, call) },
        "Decrypt": { ops, input, call throws(AWSFault) in try await ops.decrypt(&input, call) },
        "ReEncrypt": { ops, input, call throws(AWSFault) in try await ops.reEncrypt(&input, call) },
        "GenerateDataKey": { ops, input, call throws(AWSFault) in
            try await ops.generateDataKey(&input, call, plaintext: true)
        },
        "GenerateDataKeyWithoutPlaintext": { ops, input, call throws(AWSFault) in
            try await ops.generateDataKey(&input, call, plaintext: false)
        },
        "GenerateRandom": { ops, input, call throws(AWSFault) in try await ops.generateRandom(&input, call) },
        "CreateKey": { ops, input, call throws(AWSFault) in try await ops.createKey(&input, call) },
        "DescribeKey": { ops, input, call throws(AWSFault) in try await ops.describeKey(&input, call) },
        "ListKeys": { ops, input, call throws(AWSFault) in try await ops.listKeys(&input, call) },
        "EnableKey": { ops, input, call throws(AWSFault) in try await ops.simpleChange(&input, call, .enable) },
        "DisableKey": { ops, input, call throws(AWSFault) in try await ops.simpleChange(&input, call, .disable) },
        "CancelKeyDeletion": { ops, input, call throws(AWSFault) in try await ops.cancelKeyDeletion(&input, call) },
        "ScheduleKeyDeletion": { ops, input, call throws(AWSFault) in try await ops.scheduleKeyDeletion(&input, call) },
        "EnableKeyRotation": { ops, input, call throws(AWSFault) in try await ops.enableKeyRotation(&input, call) },
        "DisableKeyRotation": { ops, input, call throws(AWSFault) in try await ops.disableKeyRotation(&input, call) },
        "GetKeyRotationStatus": { ops, input, call throws(AWSFault) in try await ops.getKeyRotationStatus(&input, call)
        },
        "RotateKeyOnDemand": { ops, input, call throws(AWSFault) in try await ops.rotateKeyOnDemand(&input, call) },
        "CreateAlias": { ops, input, call throws(AWSFault) in try await ops.createAlias(&input, call) },
        "UpdateAlias": { ops, input, call throws(AWSFault) in try await ops.updateAlias(&input, call) },
        "DeleteAlias": { ops, input, call throws(AWSFault) in try await ops.deleteAlias(&input, call) },
        "ListAliases": { ops, input, call throws(AWSFault) in try await ops.listAliases(&input, call) },
        "TagResource": { ops, input, call throws(AWSFault) in try await ops.tagResource(&input, call) },
        "UntagResource": { ops, input, call throws(AWSFault) in try await ops.untagResource(&input, call) },
        "ListResourceTags": { ops, input, call throws(AWSFault) in try await ops.listResourceTags(&input, call) },
        "UpdateKeyDescription": { ops, input, call throws(AWSFault) in try await ops.updateKeyDescription(&input, call)
        },
        "GetKeyPolicy": { ops, input, call throws(AWSFault) in try await ops.getKeyPolicy(&input, call) },
        "PutKeyPolicy": { ops, input, call throws(AWSFault) in try await ops.putKeyPolicy(&input, call) },
        "ListKeyPolicies": { ops, input, call throws(AWSFault) in try await ops.listKeyPolicies(&input, call) },
    ]

    /// Operations that change nothing: they ignore `DryRun` (AWS's model does not give them
    /// the member, and a wrong-typed unknown member is ignored like any other).
    static let readOnly: Set<String> = [
        "DescribeKey", "ListKeys", "GetKeyRotationStatus", "ListAliases", "ListResourceTags", "GetKeyPolicy",
        "ListKeyPolicies", "GenerateRandom",
    ]

    /// Every other operation of AWS KMS: `UnsupportedOperationException` (not `UnknownOperation`).
    static let unsupported: Set<String> = [
        "ConnectCustomKeyStore", "CreateCustomKeyStore", "CreateGrant", "Decapsulate", "DeleteCustomKeyStore",
        "DeleteImportedKeyMaterial", "Encapsulate", "DeriveSharedSecret", "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "GetKeyLastUsage",
        "GetParametersForImport", "GetPublicKey", "ImportKeyMaterial", "ListGrants", "ListKeyRotations",
        "ListRetirableGrants",
        "ReplicateKey", "RetireGrant", "RevokeGrant", "Sign", "UpdateCustomKeyStore", "UpdatePrimaryRegion",
        "Verify", "VerifyMac",
    ]

    static let algorithm = JSONValue.string("SYMMETRIC_DEFAULT")

    // MARK: Keys named in requests

    /// The key `text` names, decided for `permission` (identity-v1 section 4,
    /// R being the native keyId or alias): its native keyId.
    /// `shown`: how a refusal names the key, when `text` is not what the caller wrote (a native keyId read
    /// from a ciphertext, or a key already resolved): an AWS caller never sees native ids, and the key an
    /// alias resolved to must not be named to a caller refused on it.
    /// `noting`: a crypto call's missing key writes its failure entry (false for a second check of keys
    /// already resolved, which is not the call's own refusal).
    /// `fields`: the operation's own fields for that entry (`withoutPlaintext`, ReEncrypt's source).
    func key(
        _ text: String, _ permission: Permission?, _ call: Call, shown: String? = nil, noting: Bool = true,
        fields: [(String, String)] = []
    ) async throws(AWSFault) -> KeyRecord {
        do {
            return try await resolvedKey(text, permission, call, shown: shown)
        } catch {
            // A crypto call's key that does not exist: its failure entry, as on the native door (an audit
            // review: a Decrypt of a deleted key's blob left no trace). Not for DryRun, which records nothing.
            if error.code == "NotFoundException", noting, let permission, !call.dryRun {
                await audit.cryptoKeyNotFound(permission, who: call.who + fields, key: entryFields(text))
            }
            throw error
        }
    }

    /// How an entry names a key the caller named: a key id, a key ARN or an alias of at most
    /// `Echo.maxShownLength` bytes as written (`keyId` too for the first two), anything else by its
    /// length only (`Auditor.shownName`: a `KeyId` not in form may be a secret pasted in the wrong place).
    func entryFields(_ text: String) -> [(String, String)] {
        if case .keyId(let id) = partition.reference(text) { return [("key", text), ("keyId", id)] }
        return [("key", shownKey(text))]
    }

    /// `text` when it is a key's UUID or ARN or an alias of at most `Echo.maxShownLength` bytes, else its
    /// length (a review: the AWS door's `permission.denied` recorded `alias/<a token>` whole).
    func shownKey(_ text: String) -> String {
        switch partition.reference(text) {
        case .keyId: text
        case .alias(let name) where Echo.mayShow(name): text
        default: Auditor.notShown(text)
        }
    }

    private func resolvedKey(_ text: String, _ permission: Permission?, _ call: Call, shown: String?)
        async throws(AWSFault) -> KeyRecord
    {
        let reference: String
        switch partition.reference(text) {
        case .keyId(let id): reference = id
        case .alias(let name): reference = name
        case .invalid, .invalidAlias: throw AWSFault.notFound
        }
        // A change to the key decides on the database, past this instance's cache (`KeyRing.resolve`).
        let fresh = permission == .keysManage || permission == .keysRotate
        do {
            var keyId = reference
            if checkGrants, let permission {
                keyId = try await KeyAccess.decide(
                    permission, on: reference, grants: call.caller.client.grants,
                    resolve: fresh ? keys.resolveNamesFresh : keys.resolveNames
                ).keyId
            }
            return try await keys.resolve(keyId, field: "KeyId", fresh: fresh)
        } catch {
            guard error.code == .permissionDenied, let permission else { throw AWSFault.from(error) }
            noteDenied(permission, text, call, keyId: error.deniedKeyId)
            // Named as the caller named it (a UUID, an ARN, an alias), not by the native keyId an AWS caller
            // never sees; the permission is the native one, which is what an admin grants (a review).
            throw AWSFault(
                "AccessDeniedException",
                "This access key's client is not granted \(permission.rawValue) on \(shownKey(shown ?? text)) (kms grants: docs/identity.md)."
            )
        }
    }

    /// The key as the entry names it (`entryFields`: an alias past 23 bytes by its length only), with the
    /// native keyId it names when the denial knew it (`KMSError.deniedKeyId`).
    func noteDenied(_ permission: Permission?, _ key: String, _ call: Call, keyId: String? = nil) {
        audit.permissionDenied(
            call.who, client: call.caller.client.clientId, permission: permission,
            key: key.isEmpty ? "" : shownKey(key), keyId: keyId,
            at: keys.clock.now())
    }

    func arn(_ record: KeyRecord) -> String { partition.keyArn(native: record.keyId) }
    func uuid(_ keyId: String) -> String { AWSKeyId.uuid(fromNative: keyId) ?? keyId }

    static func epoch(_ date: Date) -> JSONValue { .number(String(format: "%.3f", date.timeIntervalSince1970)) }

    /// A native call with its errors mapped (`keyArn` for the messages that name the key).
    func native<T>(_ keyArn: String? = nil, _ body: () async throws(KMSError) -> T) async throws(AWSFault) -> T {
        do {
            return try await body()
        } catch {
            throw AWSFault.from(error, keyArn: keyArn)
        }
    }

    // MARK: Cryptography

    func encrypt(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        try input.refuseUnsupported()
        let reference = try input.keyReference("KeyId")
        let plaintext = try input.blob("Plaintext", maxBytes: 4096)
        guard !plaintext.isEmpty else { throw AWSFault.validation("Plaintext must be 1 to 4096 bytes") }
        let aad = try input.context()
        let dryRun = try input.dryRun()
        let record = try await key(reference, .cryptoEncrypt, call)
        if dryRun { throw Self.dryRun }
        let sealed = try await native(arn(record)) { () throws(KMSError) in
            try await audit.crypto(
                "encrypt", who: call.who, keyId: record.keyId, keyAndVersion: { ($0.keyId, $0.version) }
            ) {
                () throws(KMSError) in try await keys.encrypt(record.keyId, plaintext: plaintext, aad: aad)
            }
        }
        return .object([
            ("CiphertextBlob", .string(Base64.encode(try Self.blob(sealed.ciphertext)))),
            ("KeyId", .string(arn(record))),
            ("EncryptionAlgorithm", Self.algorithm),
        ])
    }

    static func blob(_ text: String) throws(AWSFault) -> Data {
        guard let parsed = KeyCiphertext(parsing: text) else {
            throw AWSFault.internal("a ciphertext the key ring made does not parse as one")
        }
        return parsed.blob
    }

    /// AWS's limit on a binary `CiphertextBlob`.
    static let maxBlobBytes = 6144

    /// `ReEncrypt`'s answer: the binary blob, or the native text's bytes when
    /// the blob would pass `maxBlobBytes` (a long native ciphertext moved to
    /// another key): both doors take that back, where a blob over AWS's limit
    /// is refused (a review found a rotation job through `aws kms re-encrypt`
    /// turned such ciphertexts into ones this door would not decrypt).
    static func reEncryptedBlob(_ text: String) throws(AWSFault) -> Data {
        let blob = try blob(text)
        return blob.count <= maxBlobBytes ? blob : Data(text.utf8)
    }

    /// The longest native ciphertext text: `kms:v1:`, a key id (64 at most), `:`, a version (10
    /// digits at most), `:`, and the base64 of a nonce, the native door's largest plaintext and a tag.
    static let maxNativeTextBytes = 7 + 64 + 1 + 10 + 1 + 4 * ((12 + CryptoLimits.maxPlaintextBytes + 16 + 2) / 3)

    /// A `CiphertextBlob`: the binary blob (AWS's 6,144 bytes at most), or a native ciphertext's
    /// UTF-8 bytes, as long as the native door makes them: a native ciphertext of more than 4,553
    /// plaintext bytes is longer than 6,144, and section 5 has both doors read each other's (a review).
    static func ciphertext(_ input: inout AWSInput, _ name: String) throws(AWSFault) -> KeyCiphertext {
        let data = try input.blob(name, maxBytes: maxNativeTextBytes)
        // AWS's model gives the member a length of 1 to 6,144: an empty blob fails validation, not decryption.
        guard !data.isEmpty else {
            throw AWSFault.validation("1 validation error detected: `\(name)` must be at least 1 byte once decoded")
        }
        // A text of the native form may be longer; anything else past AWS's limit is refused for its length.
        if let text = String(data: data, encoding: .utf8), let parsed = KeyCiphertext(parsing: text) { return parsed }
        guard data.count <= maxBlobBytes else {
            throw AWSFault("ValidationException", "`\(name)` must be at most \(maxBlobBytes) bytes once decoded")
        }
        if let parsed = KeyCiphertext(blob: data) { return parsed }
        throw AWSFault.invalidCiphertext
    }

    /// The blob, or nil for a dry run with `DryRunModifiers: ["IGNORE_CIPHERTEXT"]`, which tests the
    /// permission only and takes no ciphertext (AWS's model makes `CiphertextBlob` optional then; one given
    /// is not read).
    static func ciphertextUnlessIgnored(
        _ input: inout AWSInput, _ name: String, dryRun: Bool
    ) throws(AWSFault) -> KeyCiphertext? {
        if dryRun, input.ignoresCiphertext() { return nil }
        return try ciphertext(&input, name)
    }

    /// The key a decrypt is judged on: the one the ciphertext names, or without one (a dry run that ignores
    /// it) the one the request names, which is then required.
    static func reference(_ ciphertext: KeyCiphertext?, _ named: String?, _ member: String) throws(AWSFault) -> String {
        if let ciphertext { return ciphertext.keyId }
        guard let named else {
            throw AWSFault.validation(
                "1 validation error detected: \(member) is required with DryRunModifiers IGNORE_CIPHERTEXT, since no ciphertext names the key"
            )
        }
        return named
    }

    func decrypt(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        try input.refuseUnsupported()
        let named = try input.optionalKeyReference("KeyId")  // a malformed member before the blob's content
        let dryRun = try input.dryRun()
        let ciphertext = try Self.ciphertextUnlessIgnored(&input, "CiphertextBlob", dryRun: dryRun)
        let aad = try input.context()
        let record = try await key(
            try Self.reference(ciphertext, named, "KeyId"), .cryptoDecrypt, call,
            shown: ciphertext.map { partition.keyArn(native: $0.keyId) } ?? named)
        if ciphertext != nil { try await checkNames(named, record, "key ID", "decrypt", call, dryRun: dryRun) }
        guard let ciphertext, !dryRun else { throw Self.dryRun }
        let opened = try await native(arn(record)) { () throws(KMSError) in
            try await audit.crypto(
                "decrypt", who: call.who, keyId: record.keyId, keyAndVersion: { ($0.keyId, $0.version) }
            ) {
                () throws(KMSError) in try await keys.decrypt(ciphertext.text, aad: aad)
            }
        }
        return .object([
            ("KeyId", .string(arn(record))), ("Plaintext", .string(Base64.encode(opened.plaintext))),
            ("EncryptionAlgorithm", Self.algorithm),
        ])
    }

    func reEncrypt(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        try input.refuseUnsupported()
        for name in ["SourceEncryptionAlgorithm", "DestinationEncryptionAlgorithm"] {
            if let algorithm = try input.optionalString(name), !algorithm.bytesEqual("SYMMETRIC_DEFAULT") {
                throw AWSFault("InvalidKeyUsageException", "This KMS has SYMMETRIC_DEFAULT (AES-256-GCM) keys only.")
            }
        }
        let named = try input.optionalKeyReference("SourceKeyId")
        let destinationReference = try input.keyReference("DestinationKeyId")
        let dryRun = try input.dryRun()
        let ciphertext = try Self.ciphertextUnlessIgnored(&input, "CiphertextBlob", dryRun: dryRun)
        let (sourceAAD, destinationAAD) = (
            try input.context("SourceEncryptionContext"), try input.context("DestinationEncryptionContext")
        )
        let sourceShown = ciphertext.map { partition.keyArn(native: $0.keyId) } ?? named
        let source = try await key(
            try Self.reference(ciphertext, named, "SourceKeyId"), .cryptoRewrap, call, shown: sourceShown)
        if ciphertext != nil {
            try await checkNames(named, source, "source key ID", "rewrap", call, dryRun: dryRun)
        }
        let destination = try await key(
            destinationReference, .cryptoRewrap, call,
            fields: ciphertext.map { [("sourceKeyId", source.keyId), ("sourceVersion", "\($0.version)")] } ?? [])
        if destination.keyId != source.keyId || destinationAAD != sourceAAD {
            // Beyond the contract's `crypto:rewrap` on both keys: a ciphertext moved to another key can
            // be decrypted by whoever may decrypt there, and one given another context loses the binding
            // its context gave it; either reads the source as a decrypt does. And either writes the
            // destination as an encrypt does: with `crypto:encrypt` on a source key, a rewrap-only grant
            // on another key would otherwise seal any chosen plaintext under it (a review did). Only
            // what native rewrap does (same key, same context) needs `crypto:rewrap` alone (docs/aws.md).
            // Judged on the keys already resolved, never on the names again: an alias moved in between
            // would have the encrypt permission checked on one key and the ciphertext sealed under another.
            _ = try await key(source.keyId, .cryptoDecrypt, call, shown: sourceShown, noting: false)
            _ = try await key(destination.keyId, .cryptoEncrypt, call, shown: destinationReference, noting: false)
        }
        guard let ciphertext, !dryRun else { throw Self.dryRun }
        // One audit entry for both halves: a failed source decrypt is recorded too.
        // An error names the key of the half that failed (a disabled source is the source's ARN).
        var sourceFailed = false
        let sealed: CiphertextResponse
        do throws(KMSError) {
            sealed = try await audit.crypto(
                "rewrap", who: call.who + [("sourceKeyId", source.keyId), ("sourceVersion", "\(ciphertext.version)")],
                keyId: destination.keyId, keyAndVersion: { ($0.keyId, $0.version) }
            ) { () throws(KMSError) in
                let opened: DecryptResponse
                do throws(KMSError) {
                    opened = try await keys.decrypt(ciphertext.text, aad: sourceAAD)
                } catch {
                    sourceFailed = true
                    throw error
                }
                return try await keys.encrypt(destination.keyId, plaintext: opened.plaintext, aad: destinationAAD)
            }
        } catch {
            throw AWSFault.from(error, keyArn: arn(sourceFailed ? source : destination))
        }
        return .object([
            ("CiphertextBlob", .string(Base64.encode(try Self.reEncryptedBlob(sealed.ciphertext)))),
            ("SourceKeyId", .string(arn(source))), ("KeyId", .string(arn(destination))),
            ("SourceEncryptionAlgorithm", Self.algorithm), ("DestinationEncryptionAlgorithm", Self.algorithm),
        ])
    }

    func generateDataKey(_ input: inout AWSInput, _ call: Call, plaintext: Bool) async throws(AWSFault) -> JSONValue {
        try input.refuseUnsupported()
        let reference = try input.keyReference("KeyId")
        let count = try input.optionalInteger("NumberOfBytes", in: 1...1024)
        let spec = try input.optionalString("KeySpec")
        let bytes: Int
        switch (count, spec) {
        case (let count?, nil): bytes = count
        case (nil, "AES_256"?): bytes = 32
        case (nil, "AES_128"?): bytes = 16
        case (nil, nil): throw AWSFault.validation("Give NumberOfBytes or KeySpec (AES_256 or AES_128).")
        case (_?, _?): throw AWSFault.validation("Give NumberOfBytes or KeySpec, not both.")
        default: throw AWSFault.validation("KeySpec must be AES_256 or AES_128.")
        }
        let aad = try input.context()
        let dryRun = try input.dryRun()
        // GenerateDataKeyWithoutPlaintext returns no plaintext: its entries say so, a failure's too (an audit
        // review: the two read the same).
        let extra = plaintext ? [] : [("withoutPlaintext", "true")]
        let record = try await key(reference, .cryptoDatakey, call, fields: extra)
        if dryRun { throw Self.dryRun }
        let dataKey = SymmetricKeyBytes.random(count: bytes)
        let who = call.who + extra
        let sealed = try await native(arn(record)) { () throws(KMSError) in
            try await audit.crypto(
                "datakey", who: who, keyId: record.keyId, keyAndVersion: { ($0.keyId, $0.version) }
            ) {
                () throws(KMSError) in try await keys.encrypt(record.keyId, plaintext: dataKey, aad: aad)
            }
        }
        var members: [(String, JSONValue)] = [
            ("CiphertextBlob", .string(Base64.encode(try Self.blob(sealed.ciphertext)))),
            ("KeyId", .string(arn(record))),
        ]
        if plaintext { members.append(("Plaintext", .string(Base64.encode(dataKey)))) }
        return .object(members)
    }

    func generateRandom(_ input: inout AWSInput, _ call: Call) async throws(AWSFault) -> JSONValue {
        try input.refuseAny(of: ["Recipient", "CustomKeyStoreId"])
        let count = try input.integer("NumberOfBytes", in: 1...1024)
        // Audited as the native door's random source is (a review found it was not).
        await audit.note(AuditEvent("crypto.random", call.who + [("bytes", "\(count)")]))
        return .object([("Plaintext", .string(Base64.encode(SymmetricKeyBytes.random(count: count))))])
    }

    /// A `KeyId` a request adds to a ciphertext must name the ciphertext's own
    /// key: compared with its names without a lookup, so it reveals nothing of other keys. A refusal is
    /// the `operation`'s failure entry, naming the ciphertext's key and the name given (an audit review: it
    /// wrote none, where every other refused call of a key the caller may use does); not for DryRun.
    func checkNames(
        _ named: String?, _ record: KeyRecord, _ what: String, _ operation: String, _ call: Call, dryRun: Bool
    ) async throws(AWSFault) {
        guard let named else { return }
        let same: Bool
        switch partition.reference(named) {
        case .keyId(let id): same = id == record.keyId
        case .alias(let alias): same = record.aliases.contains(alias)
        case .invalid, .invalidAlias: same = false
        }
        guard same else {
            if !dryRun {
                // A rewrap's `keyId` is its destination in every other entry: the source is named as such.
                let (idField, nameField) = operation == "rewrap" ? ("sourceKeyId", "sourceKey") : ("keyId", "key")
                await audit.cryptoRefused(
                    operation, who: call.who, key: [(idField, record.keyId), (nameField, shownKey(named))],
                    code: "IncorrectKeyException")
            }
            throw AWSFault(
                "IncorrectKeyException",
                "The \(what) in the request does not identify the key that encrypted the ciphertext.")
        }
    }

    static let dryRun = AWSFault(
        "DryRunOperationException", "The request would have succeeded, but the DryRun flag is set.",
        status: .preconditionFailed)
}
