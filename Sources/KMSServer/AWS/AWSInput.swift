import Foundation
import KMSCore
import KMSProtocol

/// The members of one AWS request body (aws-kms-v1 section 2): unknown
/// members are ignored (newer SDKs send more); a wrong type or a missing
/// required member is `ValidationException`; members this KMS cannot honour
/// are `UnsupportedOperationException`.
struct AWSInput {
    private var reader: JSONObjectReader

    init(_ body: Data) throws(AWSFault) {
        let bytes = body.isEmpty ? Data("{}".utf8) : body
        do throws(RequestFieldError) {
            let value: JSONValue
            do {
                value = try JSONParser.parse(bytes)
            } catch {
                throw JSONObjectReader.notJSON(error)
            }
            // A member that is null is read as absent, as AWS's JSON protocols do (Smithy's
            // awsJson1_1 protocol tests: servers don't deserialize null structure values).
            guard case .object(let members) = value else {
                throw RequestFieldError(field: nil, message: "not an object")
            }
            reader = try JSONObjectReader(.object(members.filter { if case .null = $0.1 { false } else { true } }))
        } catch {
            throw AWSFault("SerializationException", "The request body is not a JSON object: \(error.message)")
        }
    }

    private mutating func read<T>(_ body: (inout JSONObjectReader) throws(RequestFieldError) -> T) throws(AWSFault) -> T
    {
        do {
            return try body(&reader)
        } catch {
            throw AWSFault.validation("1 validation error detected: \(error.field ?? "a member"): \(error.message)")
        }
    }

    mutating func string(_ name: String) throws(AWSFault) -> String {
        try read { (reader) throws(RequestFieldError) in try reader.string(name) }
    }

    mutating func optionalString(_ name: String) throws(AWSFault) -> String? {
        try read { (reader) throws(RequestFieldError) in try reader.optionalString(name) }
    }

    /// A key reference (`KeyId`, `SourceKeyId`, `DestinationKeyId`, `TargetKeyId`). AWS's model
    /// allows 1 to 2,048 characters, so other lengths are a `ValidationException`, as AWS answers,
    /// not a key that is not found (a probe with boto3 found `""` answered `NotFoundException`).
    mutating func keyReference(_ name: String) throws(AWSFault) -> String {
        try Self.checkKeyReference(try string(name), name)
    }

    mutating func optionalKeyReference(_ name: String) throws(AWSFault) -> String? {
        try optionalString(name).map { (text) throws(AWSFault) in try Self.checkKeyReference(text, name) }
    }

    private static func checkKeyReference(_ text: String, _ name: String) throws(AWSFault) -> String {
        guard (1...2048).contains(text.count) else {
            throw AWSFault.validation("1 validation error detected: \(name) must be 1 to 2048 characters long")
        }
        return text
    }

    mutating func optionalInteger(_ name: String, in range: ClosedRange<Int64>) throws(AWSFault) -> Int? {
        try read { (reader) throws(RequestFieldError) in try reader.optionalInteger(name, in: range).map { Int($0) } }
    }

    mutating func integer(_ name: String, in range: ClosedRange<Int64>) throws(AWSFault) -> Int {
        try read { (reader) throws(RequestFieldError) in Int(try reader.integer(name, in: range)) }
    }

    mutating func blob(_ name: String, maxBytes: Int) throws(AWSFault) -> Data {
        try read { (reader) throws(RequestFieldError) in try reader.bytes(name, maxBytes: maxBytes) }
    }

    mutating func optionalBool(_ name: String) throws(AWSFault) -> Bool? {
        switch reader.take(name) {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw AWSFault.validation("1 validation error detected: \(name) must be a boolean")
        }
    }

    /// `EncryptionContext` (or another context member) as caller AAD.
    mutating func context(_ name: String = "EncryptionContext") throws(AWSFault) -> Data {
        let map = try read { (reader) throws(RequestFieldError) in try reader.optionalStringMap(name) }
        guard let map else { return Data() }
        guard let encoded = EncryptionContext.encode(map) else {
            throw AWSFault.validation("\(name) keys must not be empty, and it must encode to at most 8,192 bytes")
        }
        return encoded
    }

    /// `Tags: [{TagKey, TagValue}]`.
    mutating func tags(_ name: String = "Tags") throws(AWSFault) -> [String: String]? {
        guard let value = reader.take(name) else { return nil }
        guard case .array(let items) = value else { throw AWSFault.validation("\(name) must be a list") }
        var tags: [String: String] = [:]
        for (index, item) in items.enumerated() {
            guard case .object(let members) = item,
                case .string(let key)? = JSONValue.member(members, named: "TagKey"),
                case .string(let tagValue)? = JSONValue.member(members, named: "TagValue")
            else { throw AWSFault.validation("each of \(name) is {TagKey, TagValue}") }
            // Two keys a dictionary takes for one that are not the same bytes (`K` and U+212A): refused,
            // not merged (a review). Named by position: the keys are not validated yet, and not echoed.
            if tags.keyReadingSame(as: key) != nil {
                throw AWSFault(
                    "TagException",
                    "\(name)[\(index)].TagKey reads the same as an earlier TagKey but is written differently")
            }
            tags[key] = tagValue
        }
        do {
            try LabelRules.checkTags(tags)
        } catch {
            throw AWSFault("TagException", error.message)
        }
        return tags
    }

    mutating func stringList(_ name: String) throws(AWSFault) -> [String] {
        let list = try read { (reader) throws(RequestFieldError) in try reader.optionalStringArray(name, maxCount: 1000)
        }
        guard let list else { throw AWSFault.validation("1 validation error detected: \(name) is required") }
        return list
    }

    /// Members this KMS cannot honour (section 2).
    mutating func refuseUnsupported() throws(AWSFault) {
        try refuseAny(of: ["Recipient", "CustomKeyStoreId", "XksKeyId"])
        if try optionalBool("MultiRegion") == true { throw AWSFault.unsupported("MultiRegion") }
        if let algorithm = try optionalString("EncryptionAlgorithm"), !algorithm.bytesEqual("SYMMETRIC_DEFAULT") {
            throw AWSFault("InvalidKeyUsageException", "This KMS has SYMMETRIC_DEFAULT (AES-256-GCM) keys only.")
        }
    }

    /// Any of `names` present, whatever its value (`Recipient` is a structure
    /// in AWS's model, so reading it as a string would answer
    /// `ValidationException` instead): `UnsupportedOperationException`.
    func refuseAny(of names: [String]) throws(AWSFault) {
        for name in names where reader.contains(name) { throw AWSFault.unsupported(name) }
    }

    /// `DryRun: true`: the checks ran; stop before the operation.
    mutating func dryRun() throws(AWSFault) -> Bool { try optionalBool("DryRun") == true }

    /// `DryRunModifiers` holds `IGNORE_CIPHERTEXT` (`Decrypt`, `ReEncrypt`; read only for a dry run, as AWS's
    /// model says it applies only then): the permission is tested without a ciphertext, AWS's "Testing your
    /// permissions". aws-kms-v1 predates the member and ignores members it does not know, so any other
    /// value, or a value of another type, is ignored as before, not refused.
    mutating func ignoresCiphertext() -> Bool {
        let modifiers = try? reader.optionalStringArray("DryRunModifiers", maxCount: 1000)
        return modifiers?.contains("IGNORE_CIPHERTEXT") == true
    }
}
