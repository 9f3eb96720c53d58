import KMSProtocol

/// One entry of a grant's `keys` (identity-v1 section 4): `*`, a keyId, an
/// alias, or a prefix `p*` of aliases. Matching is byte-exact; a prefix never
/// matches a keyId, so `key*` cannot reach keys by their ids.
public enum KeyPattern: Sendable, Hashable {
    case any
    case keyId(String)
    case alias(String)
    /// Aliases that start with (or are) this non-empty text.
    case prefix(String)

    /// Parses one pattern; nil when it is not 1 to 64 characters of the grammar
    /// (`key_*`, `*-photos`, `back*up` are refused; `generate` names an alias made before it was reserved).
    public init?(_ text: String) {
        let count = text.utf8.count
        guard (1...64).contains(count) else { return nil }
        if text == "*" {
            self = .any
        } else if text.hasSuffix("*") {
            let start = String(text.dropLast())
            guard !start.bytesHave(prefix: KeyIdentifier.keyIdPrefix), Self.isAliasStart(start) else { return nil }
            self = .prefix(start)
        } else if KeyIdentifier.isKeyId(text) {
            self = .keyId(text)
        } else if KeyIdentifier.isAliasSyntax(text) {
            // api-v1's grammar, as identity-v1 section 4 says: `generate` and `rotate` are refused as new
            // aliases only (lifecycle-v1 rule 9.3), and one made before that keeps working, grants included.
            self = .alias(text)
        } else {
            return nil
        }
    }

    /// The pattern as written.
    public var text: String {
        switch self {
        case .any: return "*"
        case .keyId(let id): return id
        case .alias(let alias): return alias
        case .prefix(let start): return start + "*"
        }
    }

    /// Whether the pattern names `name` itself (a keyId or alias as a client
    /// gave it): step 1 of deciding a key, and `keys:create` on a new alias.
    /// Compared byte for byte, as section 4 says: `String`'s `==` and
    /// `hasPrefix` treat canonically equivalent text as equal, so the Kelvin
    /// sign U+212A matched a grant's `K` (a review: such a name then answered
    /// `404` where the contract answers `403`).
    public func matches(name: String) -> Bool {
        switch self {
        case .any: return true
        case .keyId(let id): return id.bytesEqual(name)
        case .alias(let alias): return alias.bytesEqual(name)
        case .prefix(let start): return !KeyIdentifier.isKeyId(name) && name.bytesHave(prefix: start)
        }
    }

    /// Whether the pattern matches a key by its keyId or its alias.
    public func matches(keyId: String, alias: String?) -> Bool {
        matches(keyId: keyId, aliases: alias.map { [$0] } ?? [])
    }

    /// Whether the pattern matches a key by its keyId or any of its aliases
    /// (lifecycle-v1: a key has 0..n aliases).
    public func matches(keyId: String, aliases: [String]) -> Bool {
        matches(name: keyId) || aliases.contains { matches(name: $0) }
    }

    /// Whether some alias starts with `text` (non-empty, no `*`). `generate`
    /// is not an alias, but `generate*` still names aliases such as `generated`.
    static func isAliasStart(_ text: String) -> Bool {
        KeyIdentifier.isValidAlias(text + "0")
    }
}
