/// identity-v1 section 4: what a grant allows. No permission implies another,
/// and there is no wildcard permission.
public enum Permission: String, Sendable, CaseIterable, Codable {
    case keysCreate = "keys:create"
    case keysRead = "keys:read"
    case keysRotate = "keys:rotate"
    /// Reserved for the lifecycle routes (state, aliases, rotation schedule).
    case keysManage = "keys:manage"
    case cryptoEncrypt = "crypto:encrypt"
    case cryptoDecrypt = "crypto:decrypt"
    case cryptoRewrap = "crypto:rewrap"
    case cryptoDatakey = "crypto:datakey"
    /// Every `/clients` route; valid only with `"keys": ["*"]`. Its holder can
    /// grant itself anything: it is root.
    case clientsManage = "clients:manage"
}
