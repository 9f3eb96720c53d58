import Foundation

/// A grant on the wire (identity-v1 section 4): `{ "keys": [patterns],
/// "allow": [permissions] }`. Its shape is checked here; the pattern grammar
/// and the permission names by the server's `Grant`.
public struct GrantBody: Codable, Sendable, Equatable {
    public var keys: [String]
    public var allow: [String]

    public init(keys: [String], allow: [String]) {
        self.keys = keys
        self.allow = allow
    }

    /// Limits of section 5.
    public static let maxGrants = 32
    public static let maxPatterns = 64

    public var json: JSONValue {
        .object([("keys", .array(keys.map { .string($0) })), ("allow", .array(allow.map { .string($0) }))])
    }

    /// The shape rules of section 5 with the field at fault as a path
    /// (`grants[1].keys[0]`): an array of at most 32 objects of exactly
    /// `keys` and `allow`, each a non-empty list of distinct strings.
    public static func parseList(_ value: JSONValue, field: String = "grants") throws(RequestFieldError) -> [GrantBody]
    {
        guard case .array(let items) = value else {
            throw RequestFieldError(field: field, message: "must be an array of grants")
        }
        guard items.count <= maxGrants else {
            throw RequestFieldError(field: field, message: "at most \(maxGrants) grants")
        }
        var grants: [GrantBody] = []
        for (index, item) in items.enumerated() {
            let path = "\(field)[\(index)]"
            guard case .object(let members) = item else {
                throw RequestFieldError(
                    field: path, message: "a grant is an object {\"keys\": [...], \"allow\": [...]}")
            }
            for (name, _) in members where name != "keys" && name != "allow" {
                throw RequestFieldError(field: "\(path).\(name)", message: "unknown member; a grant has keys and allow")
            }
            guard let keys = JSONValue.member(members, named: "keys") else {
                throw RequestFieldError(field: "\(path).keys", message: "missing")
            }
            guard let allow = JSONValue.member(members, named: "allow") else {
                throw RequestFieldError(field: "\(path).allow", message: "missing")
            }
            grants.append(
                GrantBody(
                    keys: try strings(keys, field: "\(path).keys", limit: maxPatterns),
                    // No count limit of its own: past the nine permissions a list holds a
                    // duplicate (here) or an unknown name (`Grant`), each refused at its index.
                    allow: try strings(allow, field: "\(path).allow", limit: nil)))
        }
        return grants
    }

    /// A non-empty array of distinct strings, at most `limit` (nil: any number).
    private static func strings(_ value: JSONValue, field: String, limit: Int?) throws(RequestFieldError) -> [String] {
        guard case .array(let items) = value else { throw RequestFieldError(field: field, message: "must be an array") }
        guard !items.isEmpty else { throw RequestFieldError(field: field, message: "must not be empty") }
        if let limit, items.count > limit {
            throw RequestFieldError(field: field, message: "at most \(limit) entries")
        }
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
}

/// `POST /clients`: enrol a device.
public struct AddClientRequest: Codable, StrictDecodable, Equatable {
    public var name: String
    /// b64 of the raw 32-byte Ed25519 public key.
    public var publicKey: String
    public var grants: [GrantBody]

    public init(name: String, publicKey: String, grants: [GrantBody]) {
        self.name = name
        self.publicKey = publicKey
        self.grants = grants
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        name = try reader.string("name")
        publicKey = try reader.string("publicKey")
        guard let grants = reader.take("grants") else {
            throw RequestFieldError(field: "grants", message: "`grants` is required")
        }
        self.grants = try GrantBody.parseList(grants)
    }
}

/// `POST /clients/{client}/grants`: replaces the client's grants.
public struct SetGrantsRequest: Codable, StrictDecodable, Equatable {
    public var grants: [GrantBody]

    public init(grants: [GrantBody]) { self.grants = grants }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        guard let grants = reader.take("grants") else {
            throw RequestFieldError(field: "grants", message: "`grants` is required")
        }
        self.grants = try GrantBody.parseList(grants)
    }
}

/// A client record as `/clients` routes return it (identity-v1 section 1).
public struct ClientBody: Codable, Sendable, Equatable {
    public struct AccessKey: Codable, Sendable, Equatable {
        public var accessKeyId: String
        public var createdAt: String
        public var revokedAt: String?

        public init(accessKeyId: String, createdAt: String, revokedAt: String?) {
            self.accessKeyId = accessKeyId
            self.createdAt = createdAt
            self.revokedAt = revokedAt
        }
    }

    public var clientId: String
    public var name: String
    public var publicKey: String
    public var fingerprint: String
    public var grants: [GrantBody]
    public var createdAt: String
    public var revokedAt: String?
    public var accessKeys: [AccessKey]

    public init(
        clientId: String, name: String, publicKey: String, fingerprint: String, grants: [GrantBody],
        createdAt: String, revokedAt: String?, accessKeys: [AccessKey]
    ) {
        self.clientId = clientId
        self.name = name
        self.publicKey = publicKey
        self.fingerprint = fingerprint
        self.grants = grants
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.accessKeys = accessKeys
    }
}

/// `GET /clients`: a page by clientId, revoked clients included.
public struct ClientListResponse: Codable, Sendable, Equatable {
    public var clients: [ClientBody]
    public var next: String?

    public init(clients: [ClientBody], next: String?) {
        self.clients = clients
        self.next = next
    }
}

/// `POST /clients/{client}/access-keys`: the secret, shown this once.
public struct AccessKeyCreated: Codable, Sendable, Equatable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var createdAt: String

    public init(accessKeyId: String, secretAccessKey: String, createdAt: String) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.createdAt = createdAt
    }
}

/// The secret is shown once, on purpose, by the verb that creates it; printed
/// or dumped anywhere else, the value is left out (a review).
extension AccessKeyCreated: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "AccessKeyCreated(accessKeyId: \(accessKeyId), secretAccessKey: redacted, createdAt: \(createdAt))"
    }
    public var customMirror: Mirror {
        Mirror(
            self,
            children: ["accessKeyId": accessKeyId, "secretAccessKey": "redacted", "createdAt": createdAt])
    }
}
