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
    public static let prefix = "kms:v1:"

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

    /// Parses a ciphertext string; nil when it is not one (the caller answers
    /// `400` naming the field).
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix), text.utf8.count <= 200_000 else { return nil }
        let parts = text.dropFirst(Self.prefix.count).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, KeyIdentifier.isKeyId(String(parts[0])),
            parts[1].first != "0", parts[1].allSatisfy(\.isASCIIDigit), let version = Int(parts[1]),
            version >= 1, version <= Int(Int32.max),
            let sealed = Base64.decodeStrict(String(parts[2])), sealed.count >= 28
        else { return nil }
        self.init(keyId: String(parts[0]), version: version, sealed: sealed)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
