import Foundation

// The requests of the sealed crypto calls write themselves, and their
// responses read themselves, so that the Swift client's hot path runs neither
// `JSONEncoder` nor `JSONDecoder` (issue 18: together about 16 µs a call in
// the client's profile). `FastPathTests` holds the requests to `JSONEncoder`'s
// bytes (an `encryptionContext`'s keys may come in another order: same JSON
// value) and the responses to what `JSONDecoder` reads.

extension EncryptRequest: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        if let aad { json.member("aad", base64: aad) }
        if let encryptionContext { json.member("encryptionContext", strings: encryptionContext) }
        json.member("keyId", keyId)
        json.member("plaintext", base64: plaintext)
        json.endObject()
    }
}

extension CiphertextRequest: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        if let aad { json.member("aad", base64: aad) }
        json.member("ciphertext", ciphertext)
        if let encryptionContext { json.member("encryptionContext", strings: encryptionContext) }
        json.endObject()
    }
}

extension DataKeyRequest: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        if let aad { json.member("aad", base64: aad) }
        if let bytes { json.member("bytes", integer: bytes) }
        if let encryptionContext { json.member("encryptionContext", strings: encryptionContext) }
        json.member("keyId", keyId)
        json.endObject()
    }
}

extension RandomRequest: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.member("bytes", integer: bytes)
        json.endObject()
    }
}

/// A response the client reads with `JSONObjectReader` instead of
/// `JSONDecoder`. Unlike a request, members it does not know are ignored:
/// a newer server may add some. Whatever this reader refuses, `WireJSON.decode`
/// hands to `JSONDecoder`, so it only ever adds speed, never a refusal.
public protocol WireJSONReadable: Decodable {
    init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError)
}

extension CiphertextResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(
            keyId: try reader.string("keyId"), version: try reader.version(),
            ciphertext: try reader.string("ciphertext"))
    }
}

extension DecryptResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(
            keyId: try reader.string("keyId"), version: try reader.version(),
            plaintext: try reader.bytes("plaintext", maxBytes: Int.max))
    }
}

extension DataKeyResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(
            keyId: try reader.string("keyId"), version: try reader.version(),
            plaintext: try reader.bytes("plaintext", maxBytes: Int.max), ciphertext: try reader.string("ciphertext"))
    }
}

extension RandomResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(random: try reader.string("random"))
    }
}

extension JSONObjectReader {
    fileprivate mutating func version() throws(RequestFieldError) -> Int {
        Int(try integer("version", in: Int64(Int.min)...Int64(Int.max)))
    }
}

// The key exchange's two answers and its request, for the same reason: a
// client's key exchange ran `JSONDecoder` twice and `JSONEncoder` once (about
// a tenth of its work beside the RSA, issue 18).

extension KeyExchangeRequest: WireJSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        if let clientKey { json.member("clientKey", clientKey) }
        json.member("sessionId", sessionId)
        if let signature { json.member("signature", signature) }
        json.member("wrappedKey", wrappedKey)
        json.endObject()
    }
}

extension SessionInitResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(
            sessionId: try reader.string("sessionId"), algorithm: try reader.string("algorithm"),
            publicKey: try reader.string("publicKey"), fingerprint: try reader.string("fingerprint"),
            expiresAt: try reader.string("expiresAt"))
    }
}

extension KeyExchangeResponse: WireJSONReadable {
    public init(readingResponse reader: inout JSONObjectReader) throws(RequestFieldError) {
        self.init(
            sessionId: try reader.string("sessionId"), expiresAt: try reader.string("expiresAt"),
            ttlMs: try reader.integer("ttlMs", in: Int64.min...Int64.max), sliding: try reader.boolean("sliding"),
            maxLifetimeMs: try reader.integer("maxLifetimeMs", in: Int64.min...Int64.max))
    }
}
