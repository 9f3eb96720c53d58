public import Foundation

/// Limits of api-v1.md.
public enum CryptoLimits {
    /// Largest plaintext (and `aad`) in decoded bytes.
    public static let maxPlaintextBytes = 65_536
    public static let dataKeyBytes: ClosedRange<Int64> = 16...64
    /// A data key's size when the request names none (api-v1), which a client checks the answer against.
    public static let defaultDataKeyBytes = 32
}

extension JSONObjectReader {
    /// `aad`, or `encryptionContext` (aws-kms-v1 section 5) as the same AAD
    /// bytes the AWS door uses; both at once is refused (rule 10.3).
    mutating func callerAAD() throws(RequestFieldError) -> (aad: Data?, context: [String: String]?) {
        let aad = try optionalBytes("aad", maxBytes: CryptoLimits.maxPlaintextBytes)
        guard let context = try optionalStringMap("encryptionContext") else { return (aad, nil) }
        guard aad == nil else {
            throw RequestFieldError(field: "encryptionContext", message: "give `aad` or `encryptionContext`, not both")
        }
        guard let encoded = EncryptionContext.encode(context) else {
            throw RequestFieldError(
                field: "encryptionContext",
                message: "`encryptionContext` keys must not be empty, and it must encode to at most 8,192 bytes")
        }
        return (encoded, context)
    }
}

/// `POST /crypto/encrypt` inner request.
public struct EncryptRequest: Codable, StrictDecodable, Equatable {
    public var keyId: String
    /// b64 on the wire.
    public var plaintext: Data
    /// b64 on the wire; absent equals empty. Read from `encryptionContext` when that is sent.
    public var aad: Data?
    /// aws-kms-v1: the alternative to `aad`, encoded as the AWS door encodes it.
    public var encryptionContext: [String: String]?

    public init(keyId: String, plaintext: Data, aad: Data? = nil, encryptionContext: [String: String]? = nil) {
        self.keyId = keyId
        self.plaintext = plaintext
        self.aad = aad
        self.encryptionContext = encryptionContext
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
        plaintext = try reader.bytes("plaintext", maxBytes: CryptoLimits.maxPlaintextBytes)
        (aad, encryptionContext) = try reader.callerAAD()
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
    /// The native text, or (aws-kms-v1) a `CiphertextBlob`'s base64 as `aws kms` prints it.
    public var ciphertext: String
    public var aad: Data?
    public var encryptionContext: [String: String]?

    public init(ciphertext: String, aad: Data? = nil, encryptionContext: [String: String]? = nil) {
        self.ciphertext = ciphertext
        self.aad = aad
        self.encryptionContext = encryptionContext
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        ciphertext = try reader.string("ciphertext")
        (aad, encryptionContext) = try reader.callerAAD()
    }
}

/// `POST /crypto/decrypt` inner response. Its `plaintext` is the secret: `Encodable` is for the server's
/// answer, so do not encode one into an app's own storage or logs (printing shows its size only).
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
    public var encryptionContext: [String: String]?

    public init(keyId: String, bytes: Int? = nil, aad: Data? = nil, encryptionContext: [String: String]? = nil) {
        self.keyId = keyId
        self.bytes = bytes
        self.aad = aad
        self.encryptionContext = encryptionContext
    }

    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {
        keyId = try reader.string("keyId")
        bytes = try reader.optionalInteger("bytes", in: CryptoLimits.dataKeyBytes).map(Int.init)
        (aad, encryptionContext) = try reader.callerAAD()
    }
}

/// `POST /crypto/datakey` inner response: the data key, and the same key encrypted. Keep `ciphertext`
/// with the data; `plaintext` is the secret: `Encodable` is for the server's answer, so never encode a
/// whole response into an index or a log (printing shows sizes only).
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

/// Plaintexts and data keys are secrets: printed or dumped, these show their
/// size, never their bytes (a review: `"\(x)"` showed "15 bytes", but `dump`
/// went through Foundation's mirror of a `Data`, which lists the bytes of one
/// under 64 bytes).
extension EncryptRequest: CustomStringConvertible, CustomReflectable {
    public var description: String { "EncryptRequest(keyId: \(keyId), plaintext: \(plaintext.count) bytes, redacted)" }
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "keyId": keyId, "plaintext": "\(plaintext.count) bytes, redacted", "aad": aad as Any,
                "encryptionContext": encryptionContext as Any,
            ])
    }
}

extension DecryptResponse: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "DecryptResponse(keyId: \(keyId), version: \(version), plaintext: \(plaintext.count) bytes, redacted)"
    }
    public var customMirror: Mirror {
        Mirror(
            self, children: ["keyId": keyId, "version": version, "plaintext": "\(plaintext.count) bytes, redacted"])
    }
}

extension DataKeyResponse: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "DataKeyResponse(keyId: \(keyId), version: \(version), plaintext: \(plaintext.count) bytes, redacted)"
    }
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "keyId": keyId, "version": version, "plaintext": "\(plaintext.count) bytes, redacted",
                "ciphertext": ciphertext,
            ])
    }
}
