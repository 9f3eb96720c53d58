public import Crypto
public import Foundation

/// The keys of one file (section 2), derived from its data key and header:
/// the payload key, the nonce prefix and the key commitment.
///
/// Holds key material: not `Encodable`, and its description says nothing.
public struct FileKeys: Sendable, CustomStringConvertible {
    let payloadKey: SymmetricKey
    let noncePrefix: [UInt8]
    /// Stored after the header: no file opens under two data keys.
    public let commitment: Data
    /// The header these keys were derived from: `FileStream.encrypt` refuses them with any other (a review:
    /// a new header with an earlier file's keys passed the header's one-encryption rule and reused every
    /// nonce of that file).
    let header: FileHeader

    /// Derives the keys. A data key that is not 32 bytes cannot have made a
    /// file: `commitment_mismatch`, as section 4 step 3 says.
    public init(dataKey: SymmetricKey, header: FileHeader) throws(FileFormatError) {
        guard dataKey.bitCount == 256 else {
            throw FileFormatError(.commitmentMismatch, "the data key is not 32 bytes")
        }
        self.header = header
        var info = Data(FileFormat.label)
        info.append(contentsOf: SHA256.hash(data: header.bound))
        let okm = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: dataKey, salt: header.salt, info: info, outputByteCount: 71)
        // Read where it lies: a copy of the payload key in an array would be freed unwiped (a review).
        (payloadKey, noncePrefix, commitment) = okm.withUnsafeBytes { raw in
            (
                SymmetricKey(data: UnsafeRawBufferPointer(rebasing: raw[0..<32])), Array(raw[32..<39]),
                Data(raw[39..<71])
            )
        }
    }

    /// Step 3: the derived commitment against the stored one, in constant time.
    public func verify(storedCommitment: Data) throws(FileFormatError) {
        guard storedCommitment.count == commitment.count,
            zip(storedCommitment, commitment).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0
        else {
            throw FileFormatError(
                .commitmentMismatch, "the data key does not match this file (wrong key, or the header was changed)")
        }
    }

    public var description: String { "FileKeys(redacted)" }

    /// `nonce_i = noncePrefix ‖ u32(i) ‖ final`.
    func nonce(index: UInt64, final: Bool) -> AES.GCM.Nonce? {
        var bytes = noncePrefix
        bytes.append(UInt8(truncatingIfNeeded: index >> 24))
        bytes.append(UInt8(truncatingIfNeeded: index >> 16))
        bytes.append(UInt8(truncatingIfNeeded: index >> 8))
        bytes.append(UInt8(truncatingIfNeeded: index))
        bytes.append(final ? 1 : 0)
        return try? AES.GCM.Nonce(data: bytes)
    }

    /// Seals chunk `index` (`ciphertext ‖ tag`). Past 2^32 − 2: `too_large`.
    public func seal(_ plaintext: some DataProtocol, index: UInt64, final: Bool) throws(FileFormatError) -> Data {
        guard index < FileFormat.maxChunks, plaintext.count <= FileFormat.chunkSize,
            let nonce = nonce(index: index, final: final),
            let sealed = try? AESGCM256.sealAppendingTag(plaintext, key: payloadKey, nonce: nonce)
        else {
            throw FileFormatError(.tooLarge, "a file holds at most 2^32 - 1 chunks of 64 KiB")
        }
        return sealed
    }

    /// Opens one piece (`ciphertext ‖ tag`) as chunk `index`, final or not;
    /// nil when it does not authenticate that way.
    func open(_ piece: Data, index: UInt64, final: Bool) -> Data? {
        guard piece.count >= FileFormat.tagSize, let nonce = nonce(index: index, final: final) else { return nil }
        let split = piece.index(piece.endIndex, offsetBy: -FileFormat.tagSize)
        return AESGCM256.open(
            ciphertext: piece[..<split], tag: piece[split...], nonce: Data(nonce), key: payloadKey)
    }

    /// Step 4 for one piece: opens piece `index` of a file, `isLast` when no
    /// byte follows it, and names the failure as section 4 prescribes. The
    /// plaintext is returned only after its tag verified. `piece` must be
    /// this process's own memory, not a mapping of a file another process
    /// can write: it is opened where it lies (`AESGCM256`).
    public func openPiece(_ piece: Data, index: UInt64, isLast: Bool) throws(FileFormatError) -> Data {
        if isLast, piece.count < FileFormat.tagSize {
            throw FileFormatError(.truncated, "the file ends inside its last chunk's tag")
        }
        guard index < FileFormat.maxChunks else {
            throw FileFormatError(.trailingData, "data after the largest possible file")
        }
        if !isLast {
            if let plaintext = open(piece, index: index, final: false) { return plaintext }
            if open(piece, index: index, final: true) != nil {
                throw FileFormatError(.trailingData, "data follows the final chunk \(index)")
            }
            throw FileFormatError(.chunkAuthFailed, "chunk \(index) does not authenticate (changed or reordered)")
        }
        if let plaintext = open(piece, index: index, final: true) {
            if plaintext.isEmpty, index > 0 {
                throw FileFormatError(.emptyFinalChunk, "an empty final chunk follows full chunks")
            }
            return plaintext
        }
        if open(piece, index: index, final: false) != nil {
            throw FileFormatError(.truncated, "the file ends without its final chunk")
        }
        throw FileFormatError(.chunkAuthFailed, "chunk \(index) does not authenticate (changed or cut)")
    }
}
