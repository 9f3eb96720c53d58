import KMSCore
import KMSProtocol

/// What a sealed route needs beyond a live session (identity-v1 section 4):
/// part of the route's one declaration, checked by the sealed channel after
/// the inner request validated and before the handler runs, and shown in the
/// OpenAPI document and on `/docs`. With `KMS_CLIENT_AUTH=off` nothing is
/// checked (protocol-v1).
struct RoutePermission<Inner>: Sendable {
    /// The permission, for the documents; nil when a session suffices.
    let permission: Permission?
    /// Throws `403 permission_denied` (or, for a key the client names itself,
    /// `404 key_not_found`) when the client may not; returns the keyId it
    /// decided on, which the handler then uses instead of the name (an alias
    /// moved meanwhile must not redirect the request to a key never checked).
    let check: (@Sendable (Inner, SealedChannel.Call, ClientRecord, KeyResolver) async throws(KMSError) -> String?)?
    /// The key the request names as it names it (for a `404` found while checking: its audit entry).
    var name: (@Sendable (Inner, SealedChannel.Call) -> String?)? = nil

    typealias KeyResolver = @Sendable (String) async throws(KMSError) -> KeyAccess.Names?

    /// A session suffices (`/crypto/random`, `GET /session`, token rotation, `GET /keys`).
    static var session: Self { Self(permission: nil, check: nil) }

    /// `permission` on the key the request names (`nil`: no name at all, a
    /// ciphertext that does not parse, which the handler refuses with its own `400`).
    static func key(_ permission: Permission, _ name: @escaping @Sendable (Inner, SealedChannel.Call) -> String?)
        -> Self
    {
        Self(
            permission: permission,
            check: { input, call, client, resolve throws(KMSError) in
                // An empty name is the inner request's fault: the handler answers its 400 (section 3's order).
                guard let reference = name(input, call), !reference.isEmpty else { return nil }
                // A name outside the key id and alias grammars names no key: it is decided like any
                // missing key (identity-v1 section 4), so `404` only where a pattern matches it (`*`, a prefix)
                // and `403` elsewhere; `resolve` answers it without a store read.
                return try await KeyAccess.decide(permission, on: reference, grants: client.grants, resolve: resolve)
                    .keyId
            }, name: name)
    }

    /// `keys:create`, matched against the new key's alias.
    static func create(alias: @escaping @Sendable (Inner) -> String?) -> Self {
        Self(permission: .keysCreate) { input, _, client, _ throws(KMSError) in
            let requested = alias(input)
            // A malformed alias is the inner request's 400, answered by the handler first.
            if let requested, !KeyIdentifier.isValidAlias(requested) || KeyIdentifier.hasUUIDShape(requested) {
                return nil
            }
            try KeyAccess.checkCreate(alias: requested, grants: client.grants)
            return nil
        }
    }

    /// `clients:manage`: every `/clients` route. Section 5 answers the
    /// route's own `400`s (name, key, grants, a malformed `{client}`) before
    /// the `403`, so the handler checks it (`authorizeClients`) after them.
    static var clients: Self { .checkedByHandler(.clientsManage) }

    /// `permission`, decided by the handler because the route's answers
    /// interleave it with other checks (the alias routes: lifecycle-v1 rule 9.2).
    static func checkedByHandler(_ permission: Permission) -> Self { Self(permission: permission, check: nil) }
}

extension RoutePermission where Inner: CiphertextNaming {
    /// `permission` on the key named in the request's ciphertext.
    static func ciphertextKey(_ permission: Permission) -> Self {
        .key(permission) { input, _ in KeyCiphertext(parsingEitherForm: input.ciphertext)?.keyId }
    }
}

/// A request that carries a `kms:v1:` ciphertext (decrypt, rewrap).
protocol CiphertextNaming: SendableMetatype {
    var ciphertext: String { get }
}

extension CiphertextRequest: CiphertextNaming {}
