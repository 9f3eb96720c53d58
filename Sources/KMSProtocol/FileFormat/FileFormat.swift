/// The constants of kms file v1 (file-format-v1.md): files encrypted locally
/// under a data key that the KMS wraps, in 64 KiB chunks of AES-256-GCM.
public enum FileFormat {
    /// `KMSFILE`.
    public static let magic: [UInt8] = Array("KMSFILE".utf8)
    public static let version: UInt8 = 1
    /// Plaintext bytes per chunk; fixed, not recorded (another size is another version).
    public static let chunkSize = 65_536
    public static let tagSize = 16
    /// A full chunk on disk: ciphertext and tag.
    public static let sealedChunkSize = chunkSize + tagSize
    public static let commitmentSize = 32
    public static let saltSize = 32
    public static let minHeaderLength = 47
    public static let maxHeaderLength = 8192
    /// Chunks 0 ... 2^32 − 2: a payload key stays within 2^32 GCM invocations.
    public static let maxChunks: UInt64 = (1 << 32) - 1
    /// The HKDF label and the KMS AAD prefix.
    static let label: [UInt8] = Array("kms-file-v1".utf8)
}
