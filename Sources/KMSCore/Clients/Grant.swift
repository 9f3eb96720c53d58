public import Foundation
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

    /// Reads `grants` with every rule of section 5, naming the field at fault
    /// as a path (`grants[1].keys[0]`): the shape (`GrantBody.parseList`),
    /// then the pattern grammar, the permission names and the
    /// `clients:manage` rule.
    public static func parseList(_ value: JSONValue, field: String = "grants") throws(RequestFieldError) -> [Grant] {
        try validate(try GrantBody.parseList(value, field: field), field: field)
    }

    /// The semantic rules over grants whose shape was checked.
    public static func validate(_ bodies: [GrantBody], field: String = "grants") throws(RequestFieldError) -> [Grant] {
        var grants: [Grant] = []
        for (grantIndex, body) in bodies.enumerated() {
            let path = "\(field)[\(grantIndex)]"
            var keys: [KeyPattern] = []
            for (index, text) in body.keys.enumerated() {
                guard let pattern = KeyPattern(text) else {
                    throw RequestFieldError(
                        field: "\(path).keys[\(index)]",
                        message: "not a key pattern: *, a keyId, an alias, or an alias start followed by *")
                }
                keys.append(pattern)
            }
            var allow: [Permission] = []
            for (index, name) in body.allow.enumerated() {
                guard let permission = Permission(rawValue: name) else {
                    throw RequestFieldError(
                        field: "\(path).allow[\(index)]",
                        message:
                            "unknown permission (one of: \(Permission.allCases.map(\.rawValue).joined(separator: ", ")))"
                    )
                }
                allow.append(permission)
            }
            if allow.contains(.clientsManage), keys != [.any] {
                throw RequestFieldError(
                    field: "\(path).keys", message: "clients:manage is granted only with keys [\"*\"]")
            }
            grants.append(Grant(keys: keys, allow: allow))
        }
        return grants
    }

    /// The wire form.
    public var body: GrantBody { GrantBody(keys: keys.map(\.text), allow: allow.map(\.rawValue)) }

    /// Grants as the audit log records them: their wire JSON, as text.
    public static func auditText(_ grants: [Grant]) -> String {
        JSONValue.array(grants.map(\.body.json)).serialized()
    }

    /// What a `client.add` entry records of the new client, on the server and
    /// offline (`kms clients add --local`) alike (identity-v1 section 7).
    public static func addAuditFields(name: String, publicKey: Data, grants: [Grant]) -> [(String, String)] {
        [
            ("targetName", name), ("fingerprint", ClientAuth.fingerprint(rawPublicKey: publicKey)),
            ("grants", auditText(grants)),
        ]
    }

    /// Whether this grant lists `permission` with a pattern naming `name` itself.
    public func allows(_ permission: Permission, name: String) -> Bool {
        allow.contains(permission) && keys.contains { $0.matches(name: name) }
    }

    /// Whether this grant lists `permission` with a pattern matching the key.
    public func allows(_ permission: Permission, keyId: String, alias: String?) -> Bool {
        allows(permission, keyId: keyId, aliases: alias.map { [$0] } ?? [])
    }

    /// Whether this grant lists `permission` with a pattern matching the key by any of its names.
    public func allows(_ permission: Permission, keyId: String, aliases: [String]) -> Bool {
        allow.contains(permission) && keys.contains { $0.matches(keyId: keyId, aliases: aliases) }
    }
}
