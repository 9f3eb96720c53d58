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
