import Crypto
import Foundation

#if canImport(CryptoBoringWrapper)
    import CryptoBoringWrapper
#endif

/// AES-256-GCM opening of a ciphertext and tag where they already lie, for
/// the file format's 64 KiB chunks.
///
/// Why this exists: every public way into `AES.GCM.open` goes through a
/// `SealedBox`, and every `SealedBox` initializer copies the ciphertext into
/// a new `nonce ‖ ciphertext ‖ tag` buffer first. For a file read from the
/// page cache that copy is a second pass over cold memory, and it held
/// `kms decrypt-file` on one thread at 55–63 % of raw sealing (issue 16,
/// BENCHMARKS.md). Without it: 74–79 %.
///
/// On Linux, swift-crypto's `AES.GCM.open` is `BoringSSLAEAD.AEADContext` +
/// `open(ciphertext:nonce:tag:authenticatedData:)` from its
/// `CryptoBoringWrapper` module (BoringSSL's `EVP_AEAD_CTX_open_gather`).
/// This calls the same two, with the same arguments, minus the copy: the
/// plaintext is returned only when the tag verified. That module is not one
/// of swift-crypto's products, so it is imported only where it is built
/// (`canImport`); elsewhere, and if a later swift-crypto drops it, the public
/// path runs, with the copy. The Wycheproof AES-GCM vectors run through this
/// function (`WycheproofTests.aesGCM256InPlace`).
enum InPlaceAESGCM {
    /// The plaintext, or nil when the tag does not verify (or the key is not
    /// 256 bits, or the nonce is not 96 bits).
    static func open(
        ciphertext: Data, tag: Data, nonce: AES.GCM.Nonce, key: SymmetricKey, authenticating aad: Data = Data()
    ) -> Data? {
        guard key.bitCount == 256, tag.count == 16, nonce.withUnsafeBytes({ $0.count }) == 12 else { return nil }
        #if canImport(CryptoBoringWrapper)
            guard let context = try? BoringSSLAEAD.AEADContext(cipher: .aes256gcm, key: key) else { return nil }
            return try? context.open(ciphertext: ciphertext, nonce: nonce, tag: tag, authenticatedData: aad)
        #else
            guard let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag) else { return nil }
            return try? AES.GCM.open(box, using: key, authenticating: aad)
        #endif
    }
}
