public import Foundation

/// Limits of api-v1.md.
public enum CryptoLimits {
    /// Largest plaintext (and `aad`) in decoded bytes.
    public static let maxPlaintextBytes = 65_536
    public static let dataKeyBytes: ClosedRange<Int64> = 16...64
}

/// `POST /crypto/encrypt` inner request.
public struct EncryptRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String
    /// b64 on the wire.
    public var plaintext: Data
    /// b64 on the wire; absent equals empty.
    public var aad: Data?

    public init(keyId: String, plaintext: Data, aad: Data? = nil) {
        self.keyId = keyId
        self.plaintext = plaintext
        self.aad = aad
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
        plaintext = try reader.bytes("plaintext", maxBytes: CryptoLimits.maxPlaintextBytes)
        aad = try reader.optionalBytes("aad", maxBytes: CryptoLimits.maxPlaintextBytes)
    }
}

/// `POST /crypto/encrypt` and `/crypto/rewrap` inner response.
public struct CiphertextResponse: Codable, Sendable, Equatable {
    public var keyId: String
    public var version: Int
    public var ciphertext: String

    public init(keyId: String, version: Int, ciphertext: String) {
        self.keyId = keyId
        self.version = version
        self.ciphertext = ciphertext
    }
}

/// `POST /crypto/decrypt` and `/crypto/rewrap` inner request.
public struct CiphertextRequest: Codable, StrictDecodable, Equatable {
    public var ciphertext: String
    public var aad: Data?

    public init(ciphertext: String, aad: Data? = nil) {
        self.ciphertext = ciphertext
        self.aad = aad
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        ciphertext = try reader.string("ciphertext")
        aad = try reader.optionalBytes("aad", maxBytes: CryptoLimits.maxPlaintextBytes)
    }
}

/// `POST /crypto/decrypt` inner response.
public struct DecryptResponse: Codable, Sendable, Equatable {
    public var keyId: String
    public var version: Int
    /// b64 on the wire.
    public var plaintext: Data

    public init(keyId: String, version: Int, plaintext: Data) {
        self.keyId = keyId
        self.version = version
        self.plaintext = plaintext
    }
}

/// `POST /crypto/datakey` inner request.
public struct DataKeyRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String
    public var bytes: Int?
    public var aad: Data?

    public init(keyId: String, bytes: Int? = nil, aad: Data? = nil) {
        self.keyId = keyId
        self.bytes = bytes
        self.aad = aad
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
        bytes = try reader.optionalInteger("bytes", in: CryptoLimits.dataKeyBytes).map(Int.init)
        aad = try reader.optionalBytes("aad", maxBytes: CryptoLimits.maxPlaintextBytes)
    }
}

/// `POST /crypto/datakey` inner response: the data key, and the same key encrypted.
public struct DataKeyResponse: Codable, Sendable, Equatable {
    public var keyId: String
    public var version: Int
    /// b64 on the wire.
    public var plaintext: Data
    public var ciphertext: String

    public init(keyId: String, version: Int, plaintext: Data, ciphertext: String) {
        self.keyId = keyId
        self.version = version
        self.plaintext = plaintext
        self.ciphertext = ciphertext
    }
}
