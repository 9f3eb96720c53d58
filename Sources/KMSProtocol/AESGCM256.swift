public import Crypto
public import Foundation

#if canImport(CCryptoBoringSSL) && !canImport(Darwin)
    internal import CCryptoBoringSSL
#endif

/// AES-256-GCM with a 96-bit nonce and a 128-bit tag: every seal and open of
/// the product (envelopes, key versions, the master key's wrapping, file
/// chunks) goes through this one enum; only `kms bench`'s baselines call
/// `AES.GCM` itself.
///
/// Why not swift-crypto's `AES.GCM` directly: on Linux it is BoringSSL's
/// `EVP_AEAD` behind a heap-allocated context object, generic code that is
/// not specialised across modules, and a `SealedBox` that copies the
/// ciphertext into `nonce ‖ ciphertext ‖ tag` on the way in and out. In a
/// profile of a sealed 1 KiB encrypt (issue 18, BENCHMARKS.md) its seal and
/// open were 8 % of the server's samples, of which BoringSSL's AES-GCM itself
/// was about 1 %; through this enum a sealed encrypt costs the server about
/// 5 % less (the median of ten alternating pairs), and `encrypt-file` on
/// one thread runs about 1.4 times as fast. The same BoringSSL
/// functions (`EVP_AEAD_CTX_seal_scatter`, `EVP_AEAD_CTX_open_gather`, the
/// AEAD `EVP_aead_aes_256_gcm`) are called with a context on the stack,
/// straight on the caller's bytes, and the context (the key schedule) is
/// wiped after each call. The result is the same bytes: a test holds it to
/// `AES.GCM` on random inputs, and the Wycheproof vectors run through it.
/// Nonces still come from swift-crypto (`AES.GCM.Nonce()`, the system CSPRNG).
///
/// `CCryptoBoringSSL` is swift-crypto's own module, not one of its products,
/// so its import is guarded: on Apple platforms (where `AES.GCM` is CryptoKit)
/// and wherever the module is missing, the public `AES.GCM` path runs. `direct`
/// says which one was built, and a test holds it true on Linux.
///
/// **Opening reads the ciphertext twice** (once for the tag, once to
/// decrypt), so its bytes must be this process's own (read with
/// `read`/`pread`, not a mapping of a file another process can change between
/// the two reads): `FileIO`'s `positionalReader` and `readExactly` give such
/// bytes. A plaintext is returned only when its tag verified; on failure
/// BoringSSL zeroes what it wrote.
public enum AESGCM256 {
    /// Whether this build calls BoringSSL directly (false: through `AES.GCM`).
    #if canImport(CCryptoBoringSSL) && !canImport(Darwin)
        public static let direct = true
    #else
        public static let direct = false
    #endif

    public static let nonceSize = 12
    public static let tagSize = 16

    /// The one failure of sealing: a key that is not 256 bits or a nonce
    /// that is not 96 bits (opening answers nil for everything).
    public struct Failure: Error, Equatable, Sendable {
        public init() {}
    }

    /// The ciphertext and tag of `plaintext` under `key` and `nonce`.
    @inlinable public static func seal(
        _ plaintext: some DataProtocol, key: SymmetricKey, nonce: AES.GCM.Nonce, aad: some DataProtocol = Data()
    ) throws(Failure) -> (ciphertext: Data, tag: Data) {
        let sealed = try sealAppendingTag(plaintext, key: key, nonce: nonce, aad: aad)
        let count = sealed.count - tagSize
        return (sealed.prefix(count), Data(sealed.suffix(tagSize)))  // both start at index 0
    }

    /// `ciphertext ‖ tag` of `plaintext` under `key` and `nonce`, in one buffer.
    @inlinable public static func sealAppendingTag(
        _ plaintext: some DataProtocol, key: SymmetricKey, nonce: AES.GCM.Nonce, aad: some DataProtocol = Data()
    ) throws(Failure) -> Data {
        let count = plaintext.count
        guard
            let sealed = filled(
                count: count + tagSize,
                { output in
                    nonce.withUnsafeBytes { nonce in
                        seal(
                            plaintext, key: key, nonce: nonce, aad: aad,
                            ciphertext: UnsafeMutableRawBufferPointer(rebasing: output[0..<count]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: output[count...]))
                    }
                })
        else { throw Failure() }
        return sealed
    }

    /// `nonce ‖ ciphertext ‖ tag` under a fresh random nonce: swift-crypto's
    /// `SealedBox.combined`, the form key versions and wrapped secrets keep.
    @inlinable public static func sealCombined(
        _ plaintext: some DataProtocol, key: SymmetricKey, aad: some DataProtocol = Data()
    ) throws(Failure) -> Data {
        let count = plaintext.count
        guard
            let sealed = filled(
                count: nonceSize + count + tagSize,
                { output in
                    AES.GCM.Nonce().withUnsafeBytes { nonce in
                        guard nonce.count == nonceSize else { return false }
                        output.copyMemory(from: nonce)
                        return seal(
                            plaintext, key: key, nonce: nonce, aad: aad,
                            ciphertext: UnsafeMutableRawBufferPointer(
                                rebasing: output[nonceSize..<(nonceSize + count)]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: output[(nonceSize + count)...]))
                    }
                })
        else { throw Failure() }
        return sealed
    }

    @inlinable static func seal(
        _ plaintext: some DataProtocol, key: SymmetricKey, nonce: UnsafeRawBufferPointer, aad: some DataProtocol,
        ciphertext: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) -> Bool {
        contiguous(plaintext) { plaintext in
            contiguous(aad) { aad in
                _seal(plaintext: plaintext, key: key, nonce: nonce, aad: aad, ciphertext: ciphertext, tag: tag)
            }
        }
    }

    /// The plaintext, or nil when the tag does not verify (or the key is not
    /// 256 bits, the tag not 16 bytes, or the nonce not 96 bits).
    @inlinable public static func open(
        ciphertext: some DataProtocol, tag: some DataProtocol, nonce: some DataProtocol, key: SymmetricKey,
        aad: some DataProtocol = Data()
    ) -> Data? {
        contiguous(ciphertext) { ciphertext in
            contiguous(tag) { tag in
                contiguous(nonce) { nonce in
                    contiguous(aad) { aad in _open(ciphertext: ciphertext, tag: tag, nonce: nonce, key: key, aad: aad) }
                }
            }
        }
    }

    /// Opens `nonce ‖ ciphertext ‖ tag` (`sealCombined`'s form); nil as `open`.
    @inlinable public static func openCombined(
        _ combined: Data, key: SymmetricKey, aad: some DataProtocol = Data()
    ) -> Data? {
        guard combined.count >= nonceSize + tagSize else { return nil }
        let start = combined.startIndex
        let tagStart = combined.endIndex - tagSize
        return open(
            ciphertext: combined[(start + nonceSize)..<tagStart], tag: combined[tagStart...],
            nonce: combined[start..<(start + nonceSize)], key: key, aad: aad)
    }

    /// `count` bytes that `fill` writes in full (true) or not at all (false:
    /// nil). Not zeroed first: with a zero-filled `Data(count:)` for each
    /// 64 KiB file chunk, `decrypt-file` on one thread ran a quarter slower
    /// (BENCHMARKS.md). `seal_scatter` and `open_gather` write every byte on
    /// success and zeros on failure, so nothing unwritten or unauthenticated
    /// is returned or left behind.
    @usableFromInline static func filled(count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Bool) -> Data? {
        guard let memory = malloc(max(count, 1)) else { return nil }
        guard fill(UnsafeMutableRawBufferPointer(start: memory, count: count)) else {
            free(memory)
            return nil
        }
        return Data(bytesNoCopy: memory, count: count, deallocator: .free)
    }

    /// `data`'s bytes in one buffer: in place when it is contiguous (`Data`,
    /// its slices, arrays), else copied.
    @inlinable static func contiguous<R>(_ data: some DataProtocol, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = data.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(data).withUnsafeBytes(body)
    }

    // MARK: The two calls

    /// Writes the ciphertext and tag into `ciphertext` (as long as the
    /// plaintext) and `tag` (16 bytes); false for a key that is not 256 bits
    /// or a nonce that is not 96 bits.
    @usableFromInline static func _seal(
        plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer, ciphertext: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard key.bitCount == 256, nonce.count == nonceSize, ciphertext.count == plaintext.count,
            tag.count == tagSize
        else { return false }
        #if canImport(CCryptoBoringSSL) && !canImport(Darwin)
            return withContext(key) { context in
                var tagLength = 0
                let rc = CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(
                    context, bytes(ciphertext), bytes(tag), &tagLength, tagSize, bytes(nonce), nonceSize,
                    bytes(plaintext), plaintext.count, nil, 0, bytes(aad), aad.count)
                return rc == 1 && tagLength == tagSize
            }
        #else
            guard let gcmNonce = try? AES.GCM.Nonce(data: Data(nonce)),
                let box = try? AES.GCM.seal(Data(plaintext), using: key, nonce: gcmNonce, authenticating: Data(aad))
            else { return false }
            box.ciphertext.copyBytes(to: ciphertext)
            box.tag.copyBytes(to: tag)
            return true
        #endif
    }

    /// The plaintext, or nil (see `open`).
    @usableFromInline static func _open(
        ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        key: SymmetricKey, aad: UnsafeRawBufferPointer
    ) -> Data? {
        guard key.bitCount == 256, tag.count == tagSize, nonce.count == nonceSize else { return nil }
        #if canImport(CCryptoBoringSSL) && !canImport(Darwin)
            return filled(count: ciphertext.count) { output in
                withContext(key) { context in
                    CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(
                        context, bytes(output), bytes(nonce), nonceSize, bytes(ciphertext),
                        ciphertext.count, bytes(tag), tagSize, bytes(aad), aad.count) == 1
                }
            }
        #else
            guard let gcmNonce = try? AES.GCM.Nonce(data: Data(nonce)),
                let box = try? AES.GCM.SealedBox(nonce: gcmNonce, ciphertext: Data(ciphertext), tag: Data(tag))
            else { return nil }
            return try? AES.GCM.open(box, using: key, authenticating: Data(aad))
        #endif
    }

    #if canImport(CCryptoBoringSSL) && !canImport(Darwin)
        /// An AES-256-GCM context for `key` on the stack, cleaned up after `body`
        /// (false when BoringSSL refuses the key, which a 256-bit key never is).
        private static func withContext(
            _ key: SymmetricKey, _ body: (UnsafePointer<EVP_AEAD_CTX>) -> Bool
        ) -> Bool {
            var context = EVP_AEAD_CTX()
            return withUnsafeMutablePointer(to: &context) { context in
                defer {
                    CCryptoBoringSSL_EVP_AEAD_CTX_cleanup(context)
                    // The context holds the key schedule, whose first round keys are the key itself;
                    // BoringSSL's cleanup of an AES-GCM context leaves them, so they are wiped here.
                    CCryptoBoringSSL_OPENSSL_cleanse(context, MemoryLayout<EVP_AEAD_CTX>.size)
                }
                let ready = key.withUnsafeBytes { key in
                    CCryptoBoringSSL_EVP_AEAD_CTX_init(
                        context, CCryptoBoringSSL_EVP_aead_aes_256_gcm(), bytes(key), key.count, tagSize, nil) == 1
                }
                guard ready else {
                    CCryptoBoringSSL_ERR_clear_error()
                    return false
                }
                let done = body(context)
                if !done { CCryptoBoringSSL_ERR_clear_error() }  // a failed open queues an error; drop it
                return done
            }
        }

        /// A pointer BoringSSL accepts: never nil, even for an empty buffer
        /// (whose length, zero, keeps it from being read).
        private static func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
            guard let base = buffer.baseAddress else { return emptyBytes }
            return base.assumingMemoryBound(to: UInt8.self)
        }

        private static func bytes(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8> {
            guard let base = buffer.baseAddress else { return UnsafeMutablePointer(mutating: emptyBytes) }
            return base.assumingMemoryBound(to: UInt8.self)
        }

        /// What an empty buffer points at (never read or written: its length is zero).
        nonisolated(unsafe) private static let emptyBytes: UnsafePointer<UInt8> = {
            let one = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
            one.initialize(to: 0)
            return UnsafePointer(one)
        }()
    #endif
}
