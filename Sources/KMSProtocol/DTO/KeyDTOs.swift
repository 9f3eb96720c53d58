/// `POST /keys/generate` inner request.
public struct GenerateKeyRequest: Codable, StrictDecodable, Equatable {
    public var alias: String?

    public init(alias: String? = nil) { self.alias = alias }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        alias = try reader.optionalString("alias")
    }
}

/// `POST /keys/rotate` inner request: a key id or an alias.
public struct RotateKeyRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String

    public init(keyId: String) { self.keyId = keyId }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
    }
}

/// The inner response of generate and rotate: the version just created.
public struct KeyVersionResponse: Codable, Sendable, Equatable {
    public var keyId: String
    public var version: Int
    public var createdAt: String
    public var status: String

    public init(keyId: String, version: Int, createdAt: String, status: String) {
        self.keyId = keyId
        self.version = version
        self.createdAt = createdAt
        self.status = status
    }
}

/// `GET /keys/{keyId}` inner response, and each item of `GET /keys`.
public struct KeyMetadata: Codable, Sendable, Equatable {
    public struct Version: Codable, Sendable, Equatable {
        public var version: Int
        public var createdAt: String
        public var status: String
        /// Present on every non-active version.
        public var graceUntil: String?

        public init(version: Int, createdAt: String, status: String, graceUntil: String?) {
            self.version = version
            self.createdAt = createdAt
            self.status = status
            self.graceUntil = graceUntil
        }
    }

    public var keyId: String
    public var alias: String?
    public var createdAt: String
    public var activeVersion: Int
    public var versions: [Version]

    public init(keyId: String, alias: String?, createdAt: String, activeVersion: Int, versions: [Version]) {
        self.keyId = keyId
        self.alias = alias
        self.createdAt = createdAt
        self.activeVersion = activeVersion
        self.versions = versions
    }
}

/// `GET /keys` inner response; `next` only when more keys follow.
public struct KeyListResponse: Codable, Sendable, Equatable {
    public var keys: [KeyMetadata]
    public var next: String?

    public init(keys: [KeyMetadata], next: String?) {
        self.keys = keys
        self.next = next
    }
}
