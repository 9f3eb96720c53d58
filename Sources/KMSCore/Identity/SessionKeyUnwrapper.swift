public import Crypto
import Foundation
import KMSProtocol

/// The one unwrap function of the key exchange: b64 text in, 32-byte session key out.
///
/// Bad base64, a wrong ciphertext length, an OAEP padding failure and an
/// unwrapped key that is not 32 bytes all give the same error, with the same
/// message, so that the response tells an attacker nothing (Manger's attack).
public enum SessionKeyUnwrapper {
    public static func unwrap(wrappedKey: String, with identity: IdentityKey) throws(KMSError) -> SymmetricKey {
        guard wrappedKey.utf8.count == KeyExchangeRequest.wrappedKeyTextLength,
            let ciphertext = Base64.decodeStrict(wrappedKey), ciphertext.count == IdentityKey.bits / 8,
            let plaintext = identity.unwrap(ciphertext), plaintext.count == 32
        else {
            throw KMSError.keyExchangeFailed
        }
        return SymmetricKey(data: plaintext)
    }
}
