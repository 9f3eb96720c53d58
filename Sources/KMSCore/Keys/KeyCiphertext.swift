public import Foundation
import KMSProtocol

/// The self-describing ciphertext of a managed key:
///
/// ```
/// kms:v1:<keyId>:<version>:<b64(iv || ciphertext || tag)>
/// ```
///
/// AES-256-GCM with a random 12-byte IV and a 16-byte tag, under the named
/// version's material, with AAD = `kms:v1:<keyId>:<version>` || 0x00 ||
/// caller's aad. Authenticating the header means a ciphertext cannot be
/// relabelled to another key or version; the 0x00 separator (which a header
/// never contains) keeps header and caller aad from sliding into each other.
public struct KeyCiphertext: Sendable, Equatable {
    public static let prefix = NativeCiphertext.prefix

    public let keyId: String
    public let version: Int
    /// `iv || ciphertext || tag`
    public let sealed: Data

    public init(keyId: String, version: Int, sealed: Data) {
        self.keyId = keyId
        self.version = version
        self.sealed = sealed
    }

    /// `kms:v1:<keyId>:<version>`
    public var header: String { "\(Self.prefix)\(keyId):\(version)" }

    public var text: String { header + ":" + Base64.encode(sealed) }

    /// The GCM AAD for this header and the caller's `aad`.
    public func aad(_ callerAAD: Data) -> Data {
        var bytes = Data(header.utf8)
        bytes.append(0)
        bytes.append(callerAAD)
        return bytes
    }

    /// Parses a ciphertext string (`NativeCiphertext.parse`, shared with clients); nil when it is not
    /// one (the caller answers `400` naming the field).
    public init?(parsing text: String) {
        guard let (keyId, version, sealed) = NativeCiphertext.parse(text) else { return nil }
        self.init(keyId: keyId, version: version, sealed: sealed)
    }
}

/// aws-kms-v1 section 5: the binary `CiphertextBlob` of the AWS door, the
/// native ciphertext field for field: `"KMS" 0x01` ‖ u8 L (5..64) ‖ keyId
/// (L ASCII) ‖ u32be version ‖ IV ‖ ciphertext ‖ tag. Same GCM AAD.
extension KeyCiphertext {
    static let blobMagic: [UInt8] = [0x4B, 0x4D, 0x53, 0x01]

    public var blob: Data {
        var out = Data(Self.blobMagic)
        out.append(UInt8(keyId.utf8.count))
        out.append(contentsOf: Array(keyId.utf8))
        out.append(contentsOf: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: UInt32(version) >> $0) })
        out.append(sealed)
        return out
    }

    /// Parses a blob; nil when it is not one (`InvalidCiphertextException`).
    public init?(blob: Data) {
        let bytes = [UInt8](blob)
        guard bytes.count >= 9, Array(bytes[0..<4]) == Self.blobMagic else { return nil }
        let length = Int(bytes[4])
        guard (5...64).contains(length), bytes.count >= 5 + length + 4 + 28 else { return nil }
        let keyId = String(decoding: bytes[5..<5 + length], as: UTF8.self)
        guard KeyIdentifier.isKeyId(keyId) else { return nil }
        let versionBytes = bytes[5 + length..<5 + length + 4]
        let version = versionBytes.reduce(0) { $0 << 8 | Int($1) }
        guard version >= 1, version <= Int(Int32.max) else { return nil }
        self.init(keyId: keyId, version: version, sealed: Data(bytes[(5 + length + 4)...]))
    }

    /// A ciphertext as either door may receive it: the native text, or
    /// (native decrypt and rewrap) a blob's padded base64 as `aws kms` prints it.
    public init?(parsingEitherForm text: String) {
        if let parsed = KeyCiphertext(parsing: text) {
            self = parsed
        } else if text.utf8.count <= 200_000, let data = Base64.decodeStrict(text),
            let parsed = KeyCiphertext(blob: data)
        {
            self = parsed
        } else {
            return nil
        }
    }
}
