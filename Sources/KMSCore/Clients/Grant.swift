public import KMSProtocol

/// `{ "keys": [patterns], "allow": [permissions] }` (identity-v1 section 4):
/// a client may do P on key K when one grant lists P and a pattern matching K.
/// Stored lists keep the order given.
public struct Grant: Sendable, Hashable {
    public let keys: [KeyPattern]
    public let allow: [Permission]

    public init(keys: [KeyPattern], allow: [Permission]) {
        self.keys = keys
        self.allow = allow
    }

    /// The bootstrap `admin` grant: every key, the nine permissions in section 4's order.
    public static let everything = Grant(keys: [.any], allow: Permission.allCases)

    /// Limits of section 5.
    public static let maxGrants = 32
    public static let maxPatterns = 64

    /// The grant as JSON.
    public var json: JSONValue {
        .object([
            ("keys", .array(keys.map { .string($0.text) })),
            ("allow", .array(allow.map { .string($0.rawValue) })),
        ])
    }

    /// Reads `grants` with every rule of section 5, naming the field at fault
    /// as a path (`grants[1].keys[0]`).
    public static func parseList(_ value: JSONValue, field: String = "grants") throws(RequestFieldError) -> [Grant] {
        guard case .array(let items) = value else {
            throw RequestFieldError(field: field, message: "must be an array of grants")
        }
        guard items.count <= maxGrants else {
            throw RequestFieldError(field: field, message: "at most \(maxGrants) grants")
        }
        var grants: [Grant] = []
        for (index, item) in items.enumerated() {
            grants.append(try parse(item, field: "\(field)[\(index)]"))
        }
        return grants
    }

    static func parse(_ value: JSONValue, field: String) throws(RequestFieldError) -> Grant {
        guard case .object(let members) = value else {
            throw RequestFieldError(field: field, message: "a grant is an object {\"keys\": [...], \"allow\": [...]}")
        }
        for (name, _) in members where name != "keys" && name != "allow" {
            throw RequestFieldError(field: "\(field).\(name)", message: "unknown member; a grant has keys and allow")
        }
        guard let keysValue = members.first(where: { $0.0 == "keys" })?.1 else {
            throw RequestFieldError(field: "\(field).keys", message: "missing")
        }
        guard let allowValue = members.first(where: { $0.0 == "allow" })?.1 else {
            throw RequestFieldError(field: "\(field).allow", message: "missing")
        }
        let patterns = try strings(keysValue, field: "\(field).keys", limit: maxPatterns)
        var keys: [KeyPattern] = []
        for (index, text) in patterns.enumerated() {
            guard let pattern = KeyPattern(text) else {
                throw RequestFieldError(
                    field: "\(field).keys[\(index)]",
                    message: "not a key pattern: *, a keyId, an alias, or an alias start followed by *")
            }
            keys.append(pattern)
        }
        let names = try strings(allowValue, field: "\(field).allow", limit: Permission.allCases.count)
        var allow: [Permission] = []
        for (index, name) in names.enumerated() {
            guard let permission = Permission(rawValue: name) else {
                throw RequestFieldError(
                    field: "\(field).allow[\(index)]",
                    message:
                        "unknown permission (one of: \(Permission.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            allow.append(permission)
        }
        if allow.contains(.clientsManage), keys != [.any] {
            throw RequestFieldError(field: "\(field).keys", message: "clients:manage is granted only with keys [\"*\"]")
        }
        return Grant(keys: keys, allow: allow)
    }

    /// A non-empty array of distinct strings, at most `limit`.
    private static func strings(_ value: JSONValue, field: String, limit: Int) throws(RequestFieldError) -> [String] {
        guard case .array(let items) = value else { throw RequestFieldError(field: field, message: "must be an array") }
        guard !items.isEmpty else { throw RequestFieldError(field: field, message: "must not be empty") }
        guard items.count <= limit else { throw RequestFieldError(field: field, message: "at most \(limit) entries") }
        var seen = Set<String>()
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else {
                throw RequestFieldError(field: "\(field)[\(index)]", message: "must be a string")
            }
            guard seen.insert(text).inserted else {
                throw RequestFieldError(field: "\(field)[\(index)]", message: "duplicate entry")
            }
            result.append(text)
        }
        return result
    }

    /// Whether this grant lists `permission` with a pattern naming `name` itself.
    public func allows(_ permission: Permission, name: String) -> Bool {
        allow.contains(permission) && keys.contains { $0.matches(name: name) }
    }

    /// Whether this grant lists `permission` with a pattern matching the key.
    public func allows(_ permission: Permission, keyId: String, alias: String?) -> Bool {
        allow.contains(permission) && keys.contains { $0.matches(keyId: keyId, alias: alias) }
    }
}

extension [Grant] {
    /// The list as JSON text (audit fields, stored records).
    public var json: JSONValue { .array(map(\.json)) }
}
