import KMSProtocol

/// Key ids and aliases: two alphabets that cannot be confused.
///
/// A key id is `key_` and the b64url of 16 random bytes; an alias matches
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` and never starts with `key_`, so one
/// string names at most one key whichever it is.
public enum KeyIdentifier {
    public static let keyIdPrefix = NativeCiphertext.keyIdPrefix

    /// 16 random bytes shaped as a UUID v4 (aws-kms-v1 section 4: the AWS
    /// `KeyId` is these bytes as UUID text, which Terraform validates).
    public static func newKeyId() -> String {
        var bytes = [UInt8](SymmetricKeyBytes.random(count: 16))
        AWSKeyId.uuidV4Shape(&bytes)
        return keyIdPrefix + Base64.encodeURL(bytes)
    }

    public static func isKeyId(_ text: String) -> Bool { NativeCiphertext.isKeyId(text) }

    /// Path words under `/keys/` that an alias may not take, so that
    /// `GET /keys/{alias}` always reaches the alias.
    public static let reservedAliases: Set<String> = ["generate", "rotate"]

    /// A new alias: the grammar, and not a reserved word.
    public static func isValidAlias(_ alias: String) -> Bool {
        !reservedAliases.contains(alias) && isAliasSyntax(alias)
    }

    /// 8-4-4-4-12 hexadecimal digits, either case: a name a new alias may
    /// not take. The AWS door reads a bare UUID as a key's AWS KeyId
    /// (aws-kms-v1 section 4) and metadata shows it as `awsKeyId`; were an
    /// alias allowed that name, the native door, which reads it as an alias,
    /// would send a caller who copied one key's KeyId to another key.
    public static func hasUUIDShape(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        return bytes.indices.allSatisfy { index in
            [8, 13, 18, 23].contains(index)
                ? bytes[index] == UInt8(ascii: "-")
                : (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(bytes[index] | 0x20)
        }
    }

    /// The alias grammar alone: what a lookup accepts, since aliases named
    /// `generate` or `rotate` made before they were reserved still work.
    public static func isAliasSyntax(_ alias: String) -> Bool {
        let bytes = Array(alias.utf8)
        guard let first = bytes.first, bytes.count <= 64, isAlphanumeric(first), !alias.bytesHave(prefix: keyIdPrefix)
        else { return false }
        return bytes.allSatisfy {
            isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isURLSafe(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}
