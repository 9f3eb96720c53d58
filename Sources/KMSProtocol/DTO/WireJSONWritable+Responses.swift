/// The responses every sealed crypto call returns write themselves (sorted
/// keys, as `WireJSON`'s encoder would): `WireJSONTests` holds the bytes equal.
extension CiphertextResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("ciphertext", ciphertext)
        json.member("keyId", keyId)
        json.member("version", integer: version)
        json.endObject()
    }
}

extension DecryptResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("keyId", keyId)
        json.member("plaintext", base64: plaintext)
        json.member("version", integer: version)
        json.endObject()
    }
}

extension DataKeyResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("ciphertext", ciphertext)
        json.member("keyId", keyId)
        json.member("plaintext", base64: plaintext)
        json.member("version", integer: version)
        json.endObject()
    }
}

extension RandomResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("random", random)
        json.endObject()
    }
}

/// The key exchange's two answers (issue 18: the server's side of the same
/// saving as the client's readers in `WireJSON+Requests.swift`).
extension SessionInitResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("algorithm", algorithm)
        json.member("expiresAt", expiresAt)
        json.member("fingerprint", fingerprint)
        json.member("publicKey", publicKey)
        json.member("sessionId", sessionId)
        json.endObject()
    }
}

extension KeyExchangeResponse: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("expiresAt", expiresAt)
        json.key("maxLifetimeMs")
        json.integer(maxLifetimeMs)
        json.member("sessionId", sessionId)
        json.key("sliding")
        json.literal(sliding ? "true" : "false")
        json.key("ttlMs")
        json.integer(ttlMs)
        json.endObject()
    }
}
