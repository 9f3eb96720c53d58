import Crypto
public import Foundation
import KMSProtocol

/// The master key: 32 bytes that wrap everything secret the server stores
/// (identity key, key versions, session keys in a shared store).
///
/// Wrapping is AES-256-GCM with a random 12-byte nonce, stored as
/// `nonce || ciphertext || tag`, and an AAD that names what is wrapped, so a
/// wrapped blob moved to another slot (another key id or version) fails to open.
public struct MasterKey: Sendable, CustomStringConvertible {
    private let key: SymmetricKey

    public init(bytes: some ContiguousBytes) throws(KMSError) {
        let key = SymmetricKey(data: bytes)
        guard key.bitCount == 256 else {
            throw KMSError.internal("the master key must be exactly 32 bytes")
        }
        self.key = key
    }

    /// A key for one purpose, HKDF-SHA256 of the master key (no salt, `info`,
    /// 32 bytes): the backup manifest's MAC key (lifecycle-v1 section 6).
    public func derived(info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data(info.utf8), outputByteCount: 32)
    }

    /// Never prints key material.
    public var description: String { "MasterKey(redacted)" }

    public func wrap(_ plaintext: some DataProtocol, aad: String) throws(KMSError) -> Data {
        do throws(AESGCM256.Failure) {
            return try AESGCM256.sealCombined(plaintext, key: key, aad: Data(aad.utf8))
        } catch {
            throw KMSError.internal("wrapping with the master key failed")
        }
    }

    /// Opens a wrapped blob; fails if the blob, its AAD or the master key differ.
    public func unwrap(_ wrapped: some DataProtocol, aad: String) throws(KMSError) -> Data {
        guard let plaintext = AESGCM256.openCombined(Data(wrapped), key: key, aad: Data(aad.utf8)) else {
            var error = KMSError.internal("a wrapped secret (\(aad)) did not open: wrong master key or corrupted data")
            error.cause = .secretDidNotOpen
            throw error
        }
        return plaintext
    }
}
