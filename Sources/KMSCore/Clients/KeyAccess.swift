import KMSProtocol

/// identity-v1 section 4, "Deciding a key": whether a client's grants allow
/// a permission on the key a request names, in the order that makes a
/// forbidden key and a missing one look alike to anyone who does not already
/// hold a grant naming it.
public enum KeyAccess {
    /// A key as the store knows it: all of its names.
    public struct Names: Sendable, Equatable {
        public let keyId: String
        public let aliases: [String]

        public init(keyId: String, aliases: [String]) {
            self.keyId = keyId
            self.aliases = aliases
        }

        public init(keyId: String, alias: String?) {
            self.init(keyId: keyId, aliases: alias.map { [$0] } ?? [])
        }

        /// The same key judged without one of its aliases (lifecycle-v1 rule
        /// 9.2: moving or deleting alias A is judged on its key without A).
        public func without(_ alias: String) -> Names {
            Names(keyId: keyId, aliases: aliases.filter { $0 != alias })
        }

        /// Whether `grants` allow `permission` on this key by any of its names.
        public func allowed(_ permission: Permission, by grants: [Grant]) -> Bool {
            grants.contains { $0.allows(permission, keyId: keyId, aliases: aliases) }
        }
    }

    /// Decides `permission` on `requested` (a keyId or alias as given, or the
    /// keyId in a ciphertext). `resolve` finds the key by either name, nil
    /// when there is none.
    ///
    /// 1. A pattern of a grant with the permission names `requested` itself:
    ///    resolve it; missing is `404 key_not_found`, else allowed.
    /// 2. Otherwise resolve it; a key matched by its other name is allowed;
    ///    anything else (forbidden or missing) is `403 permission_denied`.
    public static func decide(
        _ permission: Permission, on requested: String, grants: [Grant],
        resolve: (String) async throws(KMSError) -> Names?
    ) async throws(KMSError) -> Names {
        if grants.contains(where: { $0.allows(permission, name: requested) }) {
            guard let names = try await resolve(requested) else { throw notFound }
            return names
        }
        let names = try await resolve(requested)
        if let names, names.allowed(permission, by: grants) { return names }
        throw denied(permission, key: requested, keyId: names?.keyId)
    }

    /// `keys:create` on a new key: matched against the alias as a name; a key
    /// without an alias matches only `*`.
    public static func checkCreate(alias: String?, grants: [Grant]) throws(KMSError) {
        let allowed = grants.contains { grant in
            grant.allow.contains(.keysCreate)
                && grant.keys.contains { pattern in alias.map { pattern.matches(name: $0) } ?? (pattern == .any) }
        }
        guard allowed else {
            let target = alias.map { "alias \($0)" } ?? "a key without an alias"
            throw KMSError(
                .permissionDenied, "permission keys:create is not granted for \(target)", detail: alias ?? "")
        }
    }

    /// `clients:manage` for every `/clients` route.
    public static func checkClientsManage(grants: [Grant]) throws(KMSError) {
        guard grants.contains(where: { $0.allow.contains(.clientsManage) }) else {
            throw KMSError(.permissionDenied, "permission clients:manage is not granted")
        }
    }

    public static let notFound = KMSError(.keyNotFound, "no key has this id or alias")

    /// Names the permission and the key as given, no other name (section 4); `keyId`: the key it names, for
    /// the audit entry only.
    static func denied(_ permission: Permission, key: String, keyId: String? = nil) -> KMSError {
        var error = KMSError(
            .permissionDenied, "permission \(permission.rawValue) is not granted for key \(key)", detail: key)
        error.deniedKeyId = keyId
        return error
    }
}
