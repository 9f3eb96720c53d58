public import Foundation
public import KMSProtocol

/// The typed API of api-v1.md. `key` names a key by its id or an alias, never key material.
///
/// Every call runs in this client's session (made on first use). It fails with `KMSClientError`; with
/// `CancellationError` when its task is cancelled; with the transport's own error when the network
/// fails (AsyncHTTPClient's or NIO's, for the default transport); or with `TransportNeverSent` when
/// nothing of its own was sent: no connection could carry it, or the key exchange it waited for failed
/// (since 2026-12-07 for the first case too, which threw the bare error), unless an earlier send of the
/// same call reached the server (refused `unknown_session`, then made again in a new session): a change then
/// fails `outcomeUnknown` and a read the transport's error. When an answer is lost, a change
/// (`generateKey`, `rotateKey`) fails `outcomeUnknown`: it may have happened, so read the state before
/// repeating it; a read or computation (`key`, `listKeys`, `encrypt`, `decrypt`, `rewrap`, `dataKey`,
/// `random`) fails with the transport's error, and is made once more only when its resend was refused as
/// already seen.
extension KMSClient {
    /// A new key (version 1), with an optional alias, description and tags set in the same change.
    public func generateKey(alias: String? = nil, description: String? = nil, tags: [String: String]? = nil)
        async throws -> KeyVersionResponse
    {
        try await call(
            "POST", WirePath.generateKey, body: GenerateKeyRequest(alias: alias, description: description, tags: tags),
            idempotent: false)
    }

    /// A new active version; older versions keep decrypting for the server's grace period.
    public func rotateKey(_ key: String) async throws -> KeyVersionResponse {
        try await call("POST", WirePath.rotateKey, body: RotateKeyRequest(keyId: key), idempotent: false)
    }

    /// The key's metadata (versions, state, aliases, tags): never its material.
    public func key(_ key: String) async throws -> KeyMetadata {
        try await call("GET", WirePath.target(WirePath.key, ["keyId": try Self.pathSegment(key)]), idempotent: true)
    }

    /// One page of keys; give the answer's `next` as `after` for the next page.
    public func listKeys(limit: Int? = nil, after: String? = nil) async throws -> KeyListResponse {
        try await call("GET", try Self.paged(WirePath.keys, limit: limit, after: after), idempotent: true)
    }

    /// `path?limit=&after=` for the paged lists.
    static func paged(_ path: String, limit: Int?, after: String?) throws -> String {
        var query: [String] = []
        if let limit { query.append("limit=\(limit)") }
        if let after { query.append("after=\(try pathSegment(after, "a cursor (a previous next)", namesKey: false))") }
        return path + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    /// Encrypts up to 64 KiB on the server under the key's active version; `aad` must be given again to
    /// decrypt, byte for byte. For a context of pairs, use `EncryptionContext.encode(pairs)` (sorted, so
    /// the same pairs give the same bytes in every run; `JSONEncoder` without `.sortedKeys` does not),
    /// unwrapped first: it is nil for a context it cannot encode, and a nil `aad` binds nothing.
    /// For larger data use the file API (`encryptFile`, `encryptStream`): a data key, locally.
    public func encrypt(key: String, plaintext: Data, aad: Data? = nil) async throws -> CiphertextResponse {
        let sealed: CiphertextResponse = try await call(
            "POST", WirePath.encrypt, body: EncryptRequest(keyId: key, plaintext: plaintext, aad: aad),
            idempotent: true)
        try Self.checkWrapped(sealed.ciphertext, keyId: sealed.keyId, version: sealed.version, asked: key)
        return sealed
    }

    /// The plaintext of a ciphertext this server made (the key and version are read from it). The answer
    /// holds the plaintext: keep it no longer than needed (it is not wiped when released).
    public func decrypt(ciphertext: String, aad: Data? = nil) async throws -> DecryptResponse {
        try await call(
            "POST", WirePath.decrypt, body: CiphertextRequest(ciphertext: ciphertext, aad: aad), idempotent: true)
    }

    /// The same plaintext under the key's active version, without it leaving the server.
    public func rewrap(ciphertext: String, aad: Data? = nil) async throws -> CiphertextResponse {
        let sealed: CiphertextResponse = try await call(
            "POST", WirePath.rewrap, body: CiphertextRequest(ciphertext: ciphertext, aad: aad), idempotent: true)
        // A rewrap keeps its key (an AWS ciphertext blob names none this client reads: only the shape then).
        try Self.checkWrapped(
            sealed.ciphertext, keyId: sealed.keyId, version: sealed.version,
            asked: NativeCiphertext.keyAndVersion(ciphertext)?.keyId)
        return sealed
    }

    /// A fresh data key (32 bytes unless `bytes`), in the clear and encrypted under the key: encrypt
    /// locally with the first, store the second. The answer's `plaintext` is the secret.
    public func dataKey(key: String, bytes: Int? = nil, aad: Data? = nil) async throws -> DataKeyResponse {
        let made: DataKeyResponse = try await call(
            "POST", WirePath.dataKey, body: DataKeyRequest(keyId: key, bytes: bytes, aad: aad), idempotent: true)
        try Self.requireLength(made.plaintext, bytes ?? CryptoLimits.defaultDataKeyBytes, "data key")
        try Self.checkWrapped(made.ciphertext, keyId: made.keyId, version: made.version, asked: key)
        return made
    }

    /// `bytes` bytes from the server's CSPRNG, for a device that would rather use the server's than its own.
    public func random(bytes: Int) async throws -> Data {
        let reply: RandomResponse = try await call(
            "POST", WirePath.random, body: RandomRequest(bytes: bytes), idempotent: true)
        guard let data = Base64.decodeStrict(reply.random) else {
            throw KMSClientError.protocolViolation("random bytes are not base64")
        }
        try Self.requireLength(data, bytes, "random bytes")
        return data
    }

    /// Secret bytes of another length than asked for are refused, not handed on: a script using a short
    /// answer as key material would get a weak key without a word (a review, against an impostor that
    /// holds the session key: an unpinned first contact, or a compromised server).
    static func requireLength(_ data: Data, _ asked: Int, _ what: String) throws {
        guard data.count == asked else {
            throw KMSClientError.protocolViolation(
                "the server answered \(data.count) bytes of \(what), not the \(asked) asked for")
        }
    }

    /// `GET /healthz` (plain): whether the server answers at all.
    public func health() async throws -> Bool {
        let response = try await transport.send(
            TransportRequest(method: "GET", target: WirePath.healthz, headers: [], body: nil))
        return response.status == 200
    }

    /// Key ids and aliases are URL-safe by grammar; anything else is refused here
    /// rather than percent-encoded into a different AAD target.
    /// `kind` names what the segment should be, for the refusal, which repeats a text only when it is
    /// short (a long one given in the wrong place may be a secret).
    /// `namesKey`: the segment names a key or an alias, so the AWS door's forms (`alias/…`, an ARN) get a hint.
    static func pathSegment(_ text: String, _ kind: String = "a key id or alias", namesKey: Bool = true) throws
        -> String
    {
        guard !text.isEmpty, text.utf8.allSatisfy({ ClientToken.isTokenCharacter($0) && $0 != UInt8(ascii: "~") })
        else {
            let shown = Echo.mayShow(text) ? "'\(text)'" : "a text of \(text.utf8.count) bytes"
            // The AWS door's forms, which this API does not take (a newcomer's walkthrough: no hint).
            let aws =
                namesKey && (text.hasPrefix("alias/") || text.hasPrefix("arn:aws:kms:"))
                ? " (that is the AWS door's form: here a key is named by its keyId, key_…, or its alias without alias/)"
                : ""
            throw KMSClientError.configuration("\(shown) is not \(kind)\(aws)")
        }
        return text
    }
}
