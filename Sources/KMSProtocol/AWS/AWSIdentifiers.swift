import Foundation

/// aws-kms-v1 section 4: a native key id `key_` + b64url(B) (B 16 bytes) is
/// the AWS `KeyId` B as lowercase UUID text, and back — a bijection, nothing stored.
public enum AWSKeyId {
    /// `0f1e2d3c-4b5a-4987-a654-3210fedcba98` for `key_Dx4tPEtaSYemVDIQ_ty6mA`; nil for another shape.
    public static func uuid(fromNative keyId: String) -> String? {
        guard let rest = keyId.bytesAfter(prefix: "key_"), let bytes = Base64.decodeURL(rest), bytes.count == 16
        else { return nil }
        let hex = Array(SigV4.hex(bytes))
        let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }
        return groups.joined(separator: "-")
    }

    /// The native id of a UUID (any case); nil when it is not one.
    public static func native(fromUUID text: String) -> String? {
        let bytes = Array(text.lowercased().utf8)
        guard bytes.count == 36, [8, 13, 18, 23].allSatisfy({ bytes[$0] == UInt8(ascii: "-") }) else { return nil }
        let digits = bytes.enumerated().filter { ![8, 13, 18, 23].contains($0.offset) }.map(\.element)
        guard digits.allSatisfy({ SigV4.isLowerHex($0) }) else { return nil }
        var raw = Data()
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            raw.append(byte)
            index += 2
        }
        return "key_" + Base64.encodeURL(raw)
    }

    /// 16 random bytes shaped as a UUID v4, so the AWS id passes UUID checks (Terraform's).
    public static func uuidV4Shape(_ bytes: inout [UInt8]) {
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
    }
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, not `key_…` (the native alias grammar).
func isAliasGrammar(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    func alphanumeric(_ byte: UInt8) -> Bool {
        (65...90).contains(byte) || (97...122).contains(byte) || (48...57).contains(byte)
    }
    guard let first = bytes.first, bytes.count <= 64, alphanumeric(first), !name.bytesHave(prefix: "key_") else {
        return false
    }
    return bytes.allSatisfy {
        alphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
    }
}

/// ARNs of this door: `arn:aws:kms:<region>:<account>:key/<uuid>` and `…:alias/<name>`.
public struct AWSPartition: Sendable, Equatable {
    public let region: String
    public let accountId: String

    public init(region: String, accountId: String) {
        self.region = region
        self.accountId = accountId
    }

    public var prefix: String { "arn:aws:kms:\(region):\(accountId):" }

    public func keyArn(native keyId: String) -> String {
        prefix + "key/" + (AWSKeyId.uuid(fromNative: keyId) ?? keyId)
    }

    public func aliasArn(_ alias: String) -> String { prefix + "alias/" + alias }

    /// What a `KeyId` member names: a native key id, or a native alias.
    public enum Reference: Sendable, Equatable {
        case keyId(String)
        case alias(String)
        /// Not a key of this partition (`NotFoundException`), or an alias name AWS refuses.
        case invalid
        case invalidAlias
    }

    /// A UUID, native id, key ARN, `alias/<name>` or alias ARN of this partition.
    public func reference(_ text: String) -> Reference {
        var rest = text
        if text.bytesHave(prefix: "arn:") {
            guard let resource = text.bytesAfter(prefix: prefix) else { return .invalid }
            if let uuid = resource.bytesAfter(prefix: "key/") {
                return AWSKeyId.native(fromUUID: uuid).map(Reference.keyId) ?? .invalid
            }
            guard resource.bytesHave(prefix: "alias/") else { return .invalid }
            rest = resource
        }
        if let name = rest.bytesAfter(prefix: "alias/") { return aliasName(name) }
        if let native = AWSKeyId.native(fromUUID: rest) { return .keyId(native) }
        if AWSKeyId.uuid(fromNative: rest) != nil { return .keyId(rest) }
        return .invalid
    }

    /// The native alias of `alias/<name>`'s name: `alias/aws/…` and further `/` are refused.
    public func aliasName(_ name: String) -> Reference {
        guard !name.isEmpty, !name.contains("/"), isAliasGrammar(name) else { return .invalidAlias }
        return .alias(name)
    }
}
