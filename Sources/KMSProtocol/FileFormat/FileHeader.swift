import Crypto
public import Foundation
import Synchronization

/// The header of a kms file v1 (section 1), parsed with every rule checked,
/// and the byte strings derived from it (`ctx`, B, the KMS AAD).
public struct FileHeader: Sendable, Equatable {
    /// 32 random bytes, fresh for every file.
    public let salt: Data
    /// The one encryption this header may still make (`FileStream.encrypt` claims it): a header made for a
    /// new file has one, a header read from a file or rewrapped has none. Shared by a header's copies.
    private let newFile: NewFile?
    /// The KMS ciphertext of the data key (bytes 0x21–0x7E).
    public let wrappedKey: String
    /// Context pairs, sorted bytewise by key (as the format stores them).
    public let context: [ContextEntry]

    public struct ContextEntry: Sendable, Equatable {
        public let key: String
        public let value: String

        /// Byte for byte, as the format compares (section 1): Swift's `String` equality is
        /// canonical equivalence, under which `K` and the Kelvin sign U+212A are one key.
        public static func == (lhs: ContextEntry, rhs: ContextEntry) -> Bool {
            lhs.key.bytesEqual(rhs.key) && lhs.value.bytesEqual(rhs.value)
        }
    }

    /// The header of a new file, with a salt drawn from the system's CSPRNG; context keys are sorted
    /// bytewise. Throws `header_malformed` for an empty key or a header over 8,192 bytes. It encrypts one
    /// file (`FileStream.encrypt`; a second is `header_reused`).
    public init(wrappedKey: String, context: [String: String]) throws(FileFormatError) {
        try self.init(
            salt: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }, wrappedKey: wrappedKey, context: context,
            encrypts: true)
    }

    /// The same with a salt given: within this package only, since a salt given twice reuses every nonce.
    /// `encrypts`: whether it may encrypt a file (the format's vectors, which fix their salts); a header
    /// built only for its bytes or AAD (a probe with a zero salt) may not (the review of 89f9714).
    package init(
        salt: Data, wrappedKey: String, context: [String: String], encrypts: Bool = false
    ) throws(FileFormatError) {
        try self.init(
            salt: salt, wrappedKey: wrappedKey, entries: Self.entries(context), newFile: encrypts ? NewFile() : nil)
    }

    /// Byte for byte what the file holds; which encryptions remain is not part of a header's value.
    public static func == (lhs: FileHeader, rhs: FileHeader) -> Bool {
        lhs.salt == rhs.salt && lhs.wrappedKey.bytesEqual(rhs.wrappedKey) && lhs.context == rhs.context
    }

    /// Takes this header's one encryption, or throws `header_reused`.
    func claimForNewFile() throws(FileFormatError) {
        guard let newFile, newFile.claim() else {
            throw FileFormatError(
                .headerReused,
                "this header has encrypted a file already, or was read from one: each file needs a new header "
                    + "(FileHeader(wrappedKey:context:)), whose new salt gives it its own payload key and nonces")
        }
    }

    /// A header's one encryption, claimed once across its copies.
    private final class NewFile: Sendable {
        private let unclaimed = Mutex(true)

        func claim() -> Bool { unclaimed.withLock { ($0, $0 = false).0 } }
    }

    /// A context's pairs as the format stores them: sorted bytewise by key.
    static func entries(_ context: [String: String]) -> [ContextEntry] {
        context.map { ContextEntry(key: $0.key, value: $0.value) }.sorted { $0.key.bytesPrecede($1.key) }
    }

    private init(
        salt: Data, wrappedKey: String, entries: [ContextEntry], newFile: NewFile? = nil
    ) throws(FileFormatError) {
        guard salt.count == FileFormat.saltSize else {
            throw FileFormatError(.headerMalformed, "the salt must be 32 bytes")
        }
        guard !wrappedKey.isEmpty, wrappedKey.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw FileFormatError(.headerMalformed, "the wrapped key must be 1 or more printable ASCII bytes")
        }
        guard entries.allSatisfy({ !$0.key.isEmpty }) else {
            throw FileFormatError(.headerMalformed, "context keys must not be empty")
        }
        self.salt = salt
        self.wrappedKey = wrappedKey
        self.context = entries
        self.newFile = newFile
        guard encoded.count <= FileFormat.maxHeaderLength else {
            throw FileFormatError(.headerMalformed, "the header would be over 8,192 bytes (context too large)")
        }
    }

    /// The same header with another wrapped key (after a rewrap).
    public func replacingWrappedKey(_ wrappedKey: String) throws(FileFormatError) -> FileHeader {
        try FileHeader(salt: salt, wrappedKey: wrappedKey, entries: context)
    }

    /// Whether the context is exactly `expected`: the same keys with the same values, byte for byte,
    /// nothing more. The context authenticates the header, not which file it is: a file swapped for
    /// another under the same key decrypts under its own context, so a reader that knows which file
    /// it asked for says so here (a review of the library).
    public func hasContext(_ expected: [String: String]) -> Bool {
        Self.entries(expected) == context
    }

    /// The context as a dictionary, or nil when two of its keys are one `String` key: the format
    /// keeps keys that differ in bytes but are canonically equivalent (`K` and U+212A), which a
    /// Swift dictionary would merge, so a decision made on it could read one key's value for the
    /// other's. Read `context` for the pairs byte for byte.
    public var contextDictionary: [String: String]? {
        var dictionary: [String: String] = [:]
        for entry in context {
            guard dictionary.updateValue(entry.value, forKey: entry.key) == nil else { return nil }
        }
        return dictionary
    }

    /// `ctx`: N and the pairs.
    public var contextEncoding: Data {
        var out = Data()
        Self.append16(context.count, to: &out)
        for entry in context {
            Self.append16(entry.key.utf8.count, to: &out)
            out.append(contentsOf: entry.key.utf8)
            Self.append16(entry.value.utf8.count, to: &out)
            out.append(contentsOf: entry.value.utf8)
        }
        return out
    }

    /// B = magic ‖ version ‖ salt ‖ ctx: what the keys are derived from.
    public var bound: Data {
        var out = Data(FileFormat.magic)
        out.append(FileFormat.version)
        out.append(salt)
        out.append(contextEncoding)
        return out
    }

    /// `kmsAad` = "kms-file-v1" ‖ 00 ‖ ctx: the `aad` of the data key's wrap and unwrap.
    public var kmsAAD: Data {
        var out = Data(FileFormat.label)
        out.append(0)
        out.append(contextEncoding)
        return out
    }

    /// The header bytes, H included.
    public var encoded: Data {
        let ctx = contextEncoding
        let length = 10 + FileFormat.saltSize + 2 + wrappedKey.utf8.count + ctx.count
        var out = Data(FileFormat.magic)
        out.append(FileFormat.version)
        Self.append16(length, to: &out)
        out.append(salt)
        Self.append16(wrappedKey.utf8.count, to: &out)
        out.append(contentsOf: wrappedKey.utf8)
        out.append(ctx)
        return out
    }

    /// Steps 1 and 2 of section 4 on the first bytes of a file: `bytes` holds
    /// the file's first H + 32 bytes, or all of it when it is shorter. Returns
    /// the header, its length H and the stored commitment.
    public static func parse(_ bytes: Data) throws(FileFormatError) -> (
        header: FileHeader, length: Int, commitment: Data
    ) {
        let b = [UInt8](bytes)
        guard b.count >= 7, Array(b[0..<7]) == FileFormat.magic else {
            throw FileFormatError(.badMagic, "not a kms file (no KMSFILE magic)")
        }
        guard b.count >= 10 else { throw FileFormatError(.truncated, "the file ends inside its header") }
        guard b[7] == FileFormat.version else {
            throw FileFormatError(.unsupportedVersion, "kms file version \(b[7]) is not supported (only 1)")
        }
        let length = Int(b[8]) << 8 | Int(b[9])
        guard (FileFormat.minHeaderLength...FileFormat.maxHeaderLength).contains(length) else {
            throw FileFormatError(.headerMalformed, "the header length \(length) is outside 47...8192")
        }
        guard b.count >= length + FileFormat.commitmentSize else {
            throw FileFormatError(.truncated, "the file ends inside its header or commitment")
        }
        var reader = Reader(bytes: b, position: 10, end: length)
        let salt = try reader.take(FileFormat.saltSize)
        let wrappedLength = try reader.u16()
        guard wrappedLength >= 1 else { throw FileFormatError(.headerMalformed, "the wrapped key is empty") }
        let wrapped = try reader.take(wrappedLength)
        guard wrapped.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw FileFormatError(.headerMalformed, "the wrapped key holds a byte outside 0x21-0x7E")
        }
        let count = try reader.u16()
        var entries: [ContextEntry] = []
        var previous: [UInt8]?
        for _ in 0..<count {
            let key = try reader.take(try reader.u16())
            let value = try reader.take(try reader.u16())
            guard !key.isEmpty else { throw FileFormatError(.headerMalformed, "a context key is empty") }
            if let previous, !previous.lexicographicallyPrecedes(key) {
                throw FileFormatError(.headerMalformed, "context keys are not strictly ascending")
            }
            guard let keyText = String(validating: key, as: UTF8.self),
                let valueText = String(validating: value, as: UTF8.self)
            else { throw FileFormatError(.headerMalformed, "a context key or value is not UTF-8") }
            entries.append(ContextEntry(key: keyText, value: valueText))
            previous = key
        }
        guard reader.position == length else {
            throw FileFormatError(.headerMalformed, "the header's fields do not end at its length")
        }
        let header = try FileHeader(
            salt: Data(salt), wrappedKey: String(decoding: wrapped, as: UTF8.self), entries: entries)
        return (header, length, Data(b[length..<(length + FileFormat.commitmentSize)]))
    }

    private static func append16(_ value: Int, to out: inout Data) {
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }

    /// Reads fields up to the header's end; running past it is malformed.
    private struct Reader {
        let bytes: [UInt8]
        var position: Int
        let end: Int

        mutating func take(_ count: Int) throws(FileFormatError) -> [UInt8] {
            guard count <= end - position else {
                throw FileFormatError(.headerMalformed, "a header field runs past the header's length")
            }
            defer { position += count }
            return Array(bytes[position..<(position + count)])
        }

        mutating func u16() throws(FileFormatError) -> Int {
            let two = try take(2)
            return Int(two[0]) << 8 | Int(two[1])
        }
    }
}
