import Crypto
import Foundation

#if canImport(CryptoBoringWrapper) && !canImport(Darwin)
    internal import CryptoBoringWrapper
#endif

/// AES-256-GCM opening of a ciphertext and tag where they already lie, for
/// the file format's 64 KiB chunks.
///
/// Why this exists: every public way into `AES.GCM.open` goes through a
/// `SealedBox`, and every `SealedBox` initializer copies the ciphertext into
/// a new `nonce ‖ ciphertext ‖ tag` buffer first. Decryption already copies
/// each chunk once, from the file into this process's memory (see below);
/// the second copy held `kms decrypt-file` on one thread at 55–60 % of raw
/// sealing (issue 16, BENCHMARKS.md).
///
/// **The bytes must be this process's own** (read with `read`/`pread`, not a
/// mapping of a file): AES-GCM reads the ciphertext twice, once for the tag
/// and once to decrypt, and bytes another process can change between the two
/// reads could release plaintext that never authenticated. `FileIO`'s
/// `positionalReader` and `readExactly` give such bytes.
///
/// On Linux, swift-crypto's `AES.GCM.open` is `BoringSSLAEAD.AEADContext` +
/// `open(ciphertext:nonce:tag:authenticatedData:)` from its
/// `CryptoBoringWrapper` module (BoringSSL's `EVP_AEAD_CTX_open_gather`).
/// This calls the same two, with the same arguments, minus the copy: the
/// plaintext is returned only when the tag verified. That module is not one
/// of swift-crypto's products, so its import is guarded: on Apple platforms
/// (where `AES.GCM` is CryptoKit) and wherever the module is missing, the
/// public path runs, with the copy. `inPlace` says which one was built, and
/// a test holds it true on Linux. The Wycheproof AES-GCM vectors run through
/// this function (`WycheproofTests.aesGCM256InPlace`).
enum InPlaceAESGCM {
    /// Whether this build opens in place (false: through `SealedBox`).
    #if canImport(CryptoBoringWrapper) && !canImport(Darwin)
        static let inPlace = true
    #else
        static let inPlace = false
    #endif

    /// The plaintext, or nil when the tag does not verify (or the key is not
    /// 256 bits, the tag not 16 bytes, or the nonce not 96 bits).
    static func open(
        ciphertext: Data, tag: Data, nonce: AES.GCM.Nonce, key: SymmetricKey, authenticating aad: Data = Data()
    ) -> Data? {
        guard key.bitCount == 256, tag.count == 16, nonce.withUnsafeBytes({ $0.count }) == 12 else { return nil }
        #if canImport(CryptoBoringWrapper) && !canImport(Darwin)
            guard let context = try? BoringSSLAEAD.AEADContext(cipher: .aes256gcm, key: key) else { return nil }
            return try? context.open(ciphertext: ciphertext, nonce: nonce, tag: tag, authenticatedData: aad)
        #else
            guard let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag) else { return nil }
            return try? AES.GCM.open(box, using: key, authenticating: aad)
        #endif
    }
}
