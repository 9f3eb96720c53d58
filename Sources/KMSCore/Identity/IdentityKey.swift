import CryptoExtras
public import Foundation
import KMSProtocol

/// The server's RSA-4096 identity key: clients wrap their session key to it.
///
/// `_RSA.Encryption.PrivateKey` is not `Sendable` in swift-crypto 4.5. This
/// type holds one, never mutates it after init and only calls `decrypt`,
/// which BoringSSL documents as safe on a shared `RSA` object (its blinding
/// cache is guarded by the key's own lock). That is why `@unchecked Sendable`
/// is sound here, and why nothing else may reach the key.
public final class IdentityKey: @unchecked Sendable, CustomStringConvertible {
    private let privateKey: _RSA.Encryption.PrivateKey
    /// SubjectPublicKeyInfo PEM, as sent by `/session/init`.
    public let publicKeyPEM: String
    /// DER SubjectPublicKeyInfo.
    public let publicKeyDER: Data
    /// `SHA256:<hex>` of the DER SubjectPublicKeyInfo.
    public let fingerprint: String

    /// The bit size the protocol requires.
    public static let bits = 4096

    /// Generates a fresh RSA-4096 key (about a second of CPU).
    public static func generate() throws(KMSError) -> IdentityKey {
        do {
            return IdentityKey(try _RSA.Encryption.PrivateKey(keySize: .bits4096))
        } catch {
            throw KMSError.internal("RSA-4096 key generation failed")
        }
    }

    /// Loads a key from its PKCS#1 or PKCS#8 DER encoding.
    public static func load(der: Data) throws(KMSError) -> IdentityKey {
        let key: _RSA.Encryption.PrivateKey
        do {
            key = try _RSA.Encryption.PrivateKey(unsafeDERRepresentation: der)
        } catch {
            throw KMSError.internal("the stored identity key is not a valid RSA private key")
        }
        return try checked(key)
    }

    /// Loads a key from PEM (PKCS#1 or PKCS#8), as test fixtures and `openssl genpkey` write it.
    public static func load(pem: String) throws(KMSError) -> IdentityKey {
        let key: _RSA.Encryption.PrivateKey
        do {
            key = try _RSA.Encryption.PrivateKey(unsafePEMRepresentation: pem)
        } catch {
            throw KMSError.internal("the PEM is not a valid RSA private key")
        }
        return try checked(key)
    }

    /// protocol-v1 fixes RSA-4096 (and 512-byte ciphertexts): a key of another size, seeded or
    /// restored, would be served and fingerprinted while every exchange failed (a review).
    private static func checked(_ key: _RSA.Encryption.PrivateKey) throws(KMSError) -> IdentityKey {
        guard key.keySizeInBits == bits else {
            throw KMSError.internal(
                "the identity key is RSA-\(key.keySizeInBits); protocol-v1 requires RSA-\(bits): give a 4096-bit key")
        }
        return IdentityKey(key)
    }

    private init(_ key: _RSA.Encryption.PrivateKey) {
        privateKey = key
        publicKeyPEM = key.publicKey.pemRepresentation + (key.publicKey.pemRepresentation.hasSuffix("\n") ? "" : "\n")
        publicKeyDER = key.publicKey.derRepresentation
        fingerprint = Fingerprint.of(spkiDER: key.publicKey.derRepresentation)
    }

    /// The private key's DER, only to be wrapped by the master key for storage.
    public var privateKeyDER: Data { privateKey.derRepresentation }

    public var keySizeInBits: Int { privateKey.keySizeInBits }

    /// Never prints key material.
    public var description: String { "IdentityKey(\(fingerprint))" }

    /// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label.
    ///
    /// Every failure — padding, length, anything — is the same `nil`, so that
    /// callers cannot tell them apart (Manger's attack).
    public func unwrap(_ ciphertext: some DataProtocol) -> Data? {
        try? privateKey.decrypt(ciphertext, padding: .PKCS1_OAEP_SHA256)
    }
}
