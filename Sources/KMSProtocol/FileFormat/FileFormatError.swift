/// Why a file cannot be read or written (file-format-v1 sections 3 to 5 and
/// the CLI rules): one stable code each, named on the CLI's standard error.
public struct FileFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        case badMagic = "bad_magic"
        case truncated
        case unsupportedVersion = "unsupported_version"
        case headerMalformed = "header_malformed"
        case commitmentMismatch = "commitment_mismatch"
        case chunkAuthFailed = "chunk_auth_failed"
        case trailingData = "trailing_data"
        case emptyFinalChunk = "empty_final_chunk"
        /// A writer would exceed 2^32 − 1 chunks.
        case tooLarge = "too_large"
        /// A range starts at or past the plaintext's end.
        case rangeNotSatisfiable = "range_not_satisfiable"
        /// A range is not `START-END` with START ≤ END.
        case rangeInvalid = "range_invalid"
        /// This project's own: the file's context is not the one the reader expects (`expectedContext`,
        /// `kms decrypt-file --context`), so it is another file than the one asked for.
        case contextMismatch = "context_mismatch"
        /// This project's own: the file's wrapped key is not under the key the reader expects
        /// (`expectedKey`, `kms decrypt-file --key`): a file made under another key it may also decrypt
        /// with, by whoever holds `crypto:datakey` there, with the context expected (a review).
        case keyMismatch = "key_mismatch"
        /// This project's own: a header encrypts one file. Its salt makes the file's payload key and nonce
        /// prefix, so a second file under the same header, or under one read from an existing file, would
        /// reuse every nonce of the first (a review: the library allowed it). `FileHeader(wrappedKey:context:)`
        /// draws a new salt for each file.
        case headerReused = "header_reused"
    }

    public let code: Code
    /// For people; never holds key material or plaintext.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// Two failures are the same when their codes are.
    public static func == (lhs: FileFormatError, rhs: FileFormatError) -> Bool { lhs.code == rhs.code }
}
