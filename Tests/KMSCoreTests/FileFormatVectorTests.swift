import Crypto
import Foundation
import KMSCore
import Testing

@testable import KMSProtocol

/// kms file v1: every vector of `Fixtures/file-v1/vectors.json` (made by an
/// independent implementation) through the very functions clients use.
@Suite struct FileFormatVectorTests {
    static var root: [String: Any] { (try? Fixture.json("file-v1/vectors.json")) ?? [:] }
    static var encryptVectors: [[String: Any]] { root["encrypt"] as? [[String: Any]] ?? [] }

    /// The plaintext of a vector: hex, or the mod-251 pattern.
    static func plaintext(_ vector: [String: Any]) -> Data {
        if let hex = vector["plaintext"] as? String { return Data(hex: hex) }
        let length = vector["plaintextLength"] as? Int ?? 0
        return Data((0..<length).map { UInt8($0 % 251) })
    }

    static func hex(_ data: some Sequence<UInt8>) -> String { Hex.encode(data) }

    /// Encrypts a vector's inputs through `FileStream`, byte-exact with its salt and data key.
    static func encrypt(_ vector: [String: Any], threads: Int = 2, maxRead: Int = .max) async throws -> Data {
        let header = try FileHeader(
            salt: Data(hex: vector["salt"] as? String ?? ""), wrappedKey: vector["wrappedKey"] as? String ?? "",
            context: vector["context"] as? [String: String] ?? [:], encrypts: true)
        let keys = try FileKeys(
            dataKey: SymmetricKey(data: Data(hex: vector["dataKey"] as? String ?? "")), header: header)
        var input = plaintext(vector)
        var output = Data()
        try await FileStream.encrypt(
            header: header, keys: keys, threads: threads,
            read: { count in
                let taken = input.prefix(min(count, maxRead))
                input = input.dropFirst(taken.count)
                return Data(taken)
            },
            write: { output.append($0) })
        return output
    }

    /// Decrypts a whole file with a known data key; returns what was written and the error, if any.
    /// `positional`: the chunks through `FileStream.decrypt(keys:headerLength:fileSize:…)`, as a regular file is read.
    static func decrypt(
        _ file: Data, dataKey: Data, threads: Int = 2, positional: Bool = false, maxRead: Int = .max
    ) async -> (written: Data, error: FileFormatError?) {
        var input = file
        var written = Data()
        let read: FileStream.Read = { count in
            let taken = input.prefix(min(count, maxRead))
            input = input.dropFirst(taken.count)
            return Data(taken)
        }
        do {
            let (header, length, commitment) = try await FileStream.readHeader(read: read)
            let keys = try FileKeys(dataKey: SymmetricKey(data: dataKey), header: header)
            try keys.verify(storedCommitment: commitment)
            if positional {
                try await FileStream.decrypt(
                    keys: keys, headerLength: length, fileSize: UInt64(file.count), threads: threads,
                    readAt: { offset, count in
                        let from = min(file.count, Int(offset))
                        return Data(file[(file.startIndex + from)..<(file.startIndex + min(file.count, from + count))])
                    }, write: { written.append($0) })
            } else {
                try await FileStream.decrypt(keys: keys, threads: threads, read: read, write: { written.append($0) })
            }
            return (written, nil)
        } catch let error as FileFormatError {
            return (written, error)
        } catch {
            return (written, FileFormatError(.chunkAuthFailed, "unexpected \(error)"))
        }
    }

    /// A header encrypts one file (a review: the library let one header, or one read from a file, encrypt
    /// another, reusing every nonce of the first): a second encryption, by any copy of it, and one under a
    /// header read from a file are `header_reused` before a byte is written; each new header draws its salt.
    @Test func aHeaderEncryptsOneFile() async throws {
        let dataKey = SymmetricKey(size: .bits256)
        let header = try FileHeader(wrappedKey: "kms:v1:key_x:1:AAAA", context: ["a": "b"])
        #expect(header.salt.count == FileFormat.saltSize)
        #expect(try FileHeader(wrappedKey: "kms:v1:key_x:1:AAAA", context: ["a": "b"]).salt != header.salt)
        let keys = try FileKeys(dataKey: dataKey, header: header)
        var file = Data()
        var once = true
        try await FileStream.encrypt(
            header: header, keys: keys,
            read: { _ in
                defer { once = false }
                return once ? Data("hello".utf8) : Data()
            }, write: { file.append($0) })
        let copy = header
        var written = 0
        for again in [header, copy] {
            let refused = await #expect(throws: FileFormatError.self) {
                try await FileStream.encrypt(
                    header: again, keys: keys, read: { _ in Data("other".utf8) }, write: { written += $0.count })
            }
            #expect(refused?.code == .headerReused)
        }
        var offset = 0
        let (parsed, _, _) = try await FileStream.readHeader(read: { count in
            defer { offset += count }
            return file[offset..<min(file.count, offset + count)]
        })
        #expect(parsed == header)
        let fromFile = await #expect(throws: FileFormatError.self) {
            try await FileStream.encrypt(
                header: parsed, keys: try FileKeys(dataKey: dataKey, header: parsed), read: { _ in Data() },
                write: { written += $0.count })
        }
        #expect(fromFile?.code == .headerReused)
        #expect(try parsed.replacingWrappedKey("kms:v1:key_x:2:AAAA").salt == header.salt)
        // A new header with the keys of an earlier one (the review of 89f9714: they passed and reused every
        // nonce of that file) is refused, and keeps its one encryption for its own keys.
        let fresh = try FileHeader(wrappedKey: "kms:v1:key_x:1:AAAA", context: ["a": "b"])
        let mixed = await #expect(throws: FileFormatError.self) {
            try await FileStream.encrypt(
                header: fresh, keys: keys, read: { _ in Data() }, write: { written += $0.count })
        }
        #expect(mixed?.code == .headerReused)
        #expect(written == 0)
        // A header made for its bytes only (a probe with a given salt) encrypts nothing.
        let probe = try FileHeader(salt: Data(count: FileFormat.saltSize), wrappedKey: "x", context: [:])
        let probed = await #expect(throws: FileFormatError.self) {
            try await FileStream.encrypt(
                header: probe, keys: try FileKeys(dataKey: dataKey, header: probe), read: { _ in Data() },
                write: { written += $0.count })
        }
        #expect(probed?.code == .headerReused)
        #expect(written == 0)
        try await FileStream.encrypt(
            header: fresh, keys: try FileKeys(dataKey: dataKey, header: fresh), read: { _ in Data() },
            write: { written += $0.count })
        #expect(written > 0)
    }

    @Test func encryptVectorsByteExact() async throws {
        #expect(Self.encryptVectors.count == 12)
        for vector in Self.encryptVectors {
            let id = vector["id"] as? String ?? "?"
            let header = try FileHeader(
                salt: Data(hex: vector["salt"] as? String ?? ""), wrappedKey: vector["wrappedKey"] as? String ?? "",
                context: vector["context"] as? [String: String] ?? [:])
            #expect(Self.hex(header.contextEncoding) == vector["contextEncoding"] as? String, "\(id)")
            #expect(Base64.encode(header.kmsAAD) == vector["kmsAadB64"] as? String, "\(id)")
            #expect(Self.hex(header.encoded) == vector["header"] as? String, "\(id)")
            #expect(header.encoded.count == vector["headerLength"] as? Int, "\(id)")
            #expect(Self.hex(header.bound) == vector["bound"] as? String, "\(id)")
            let keys = try FileKeys(
                dataKey: SymmetricKey(data: Data(hex: vector["dataKey"] as? String ?? "")), header: header)
            #expect(keys.payloadKey.withUnsafeBytes { Self.hex($0) } == vector["payloadKey"] as? String, "\(id)")
            #expect(Self.hex(keys.noncePrefix) == vector["noncePrefix"] as? String, "\(id)")
            #expect(Self.hex(keys.commitment) == vector["commitment"] as? String, "\(id)")
            for threads in [1, 2] {
                let file = try await Self.encrypt(vector, threads: threads)
                #expect(file.count == vector["fileLength"] as? Int, "\(id)")
                #expect(Self.hex(SHA256.hash(data: file)) == vector["fileSha256"] as? String, "\(id)")
                if let b64 = vector["fileB64"] as? String { #expect(Base64.encode(file) == b64, "\(id)") }
                for positional in [false, true] {
                    let back = await Self.decrypt(
                        file, dataKey: Data(hex: vector["dataKey"] as? String ?? ""), threads: threads,
                        positional: positional)
                    #expect(
                        back.error == nil && back.written == Self.plaintext(vector),
                        "\(id) positional \(positional): \(String(describing: back.error))")
                }
            }
            // Each chunk's nonce and tag, as the vector lists them.
            let file = try await Self.encrypt(vector)
            let start = header.encoded.count + 32
            for chunk in vector["chunks"] as? [[String: Any]] ?? [] {
                let index = chunk["index"] as? Int ?? 0
                let final = chunk["final"] as? Bool ?? false
                let nonce = try #require(keys.nonce(index: UInt64(index), final: final))
                #expect(Self.hex(Data(nonce)) == chunk["nonce"] as? String, "\(id) chunk \(index)")
                let end = start + index * FileFormat.sealedChunkSize + (chunk["plaintextLength"] as? Int ?? 0) + 16
                #expect(Self.hex(file[(end - 16)..<end]) == chunk["tag"] as? String, "\(id) chunk \(index)")
            }
        }
    }

    /// The wrapped keys are genuine KMS ciphertexts under the kmsAad: the
    /// format's AAD is the one the KMS binds.
    @Test func wrappedKeysOpenUnderTheKMSAAD() throws {
        let managed = try #require(Self.root["managedKey"] as? [String: Any])
        let material = try #require(managed["material"] as? [String: String])
        for vector in Self.encryptVectors {
            let parsed = try #require(KeyCiphertext(parsing: vector["wrappedKey"] as? String ?? ""))
            let key = SymmetricKey(data: Data(hex: material["\(parsed.version)"] ?? ""))
            let aad = parsed.aad(Data(base64Encoded: vector["kmsAadB64"] as? String ?? "") ?? Data())
            let opened = try AES.GCM.open(AES.GCM.SealedBox(combined: parsed.sealed), using: key, authenticating: aad)
            #expect(Self.hex(opened) == vector["dataKey"] as? String)
        }
    }

    /// A vector's file: from `fileB64`, or encrypted again from its inputs.
    static func file(of id: String) async throws -> Data {
        let vector = try #require(encryptVectors.first { $0["id"] as? String == id })
        if let b64 = vector["fileB64"] as? String, let data = Data(base64Encoded: b64) { return data }
        return try await encrypt(vector)
    }

    /// Applies a decrypt-error vector's edits to its base file.
    static func edited(_ vector: [String: Any]) async throws -> Data {
        var bytes = [UInt8](try await file(of: vector["base"] as? String ?? ""))
        for edit in vector["edits"] as? [[String: Any]] ?? [] {
            switch edit["op"] as? String {
            case "truncate": bytes = Array(bytes.prefix(edit["length"] as? Int ?? 0))
            case "xor":
                let offset = edit["offset"] as? Int ?? 0
                for (i, byte) in Data(hex: edit["hex"] as? String ?? "").enumerated() { bytes[offset + i] ^= byte }
            case "splice":
                let offset = edit["offset"] as? Int ?? 0
                bytes.replaceSubrange(
                    offset..<(offset + (edit["delete"] as? Int ?? 0)),
                    with: Data(hex: edit["insertHex"] as? String ?? ""))
            case "swap":
                let a = edit["offsetA"] as? Int ?? 0
                let b = edit["offsetB"] as? Int ?? 0
                let length = edit["length"] as? Int ?? 0
                let first = Array(bytes[a..<(a + length)])
                bytes.replaceSubrange(a..<(a + length), with: bytes[b..<(b + length)])
                bytes.replaceSubrange(b..<(b + length), with: first)
            default: Issue.record("unknown edit \(edit)")
            }
        }
        return Data(bytes)
    }

    @Test func decryptErrorVectorsGiveTheirCode() async throws {
        let vectors = try #require(Self.root["decryptErrors"] as? [[String: Any]])
        #expect(vectors.count == 30)
        for vector in vectors {
            let id = vector["id"] as? String ?? "?"
            let file = try await Self.edited(vector)
            #expect(Self.hex(SHA256.hash(data: file)) == vector["fileSha256"] as? String, "\(id): edits")
            let base = try #require(Self.encryptVectors.first { $0["id"] as? String == vector["base"] as? String })
            for threads in [1, 2] {
                let result = await Self.decrypt(
                    file, dataKey: Data(hex: vector["dataKey"] as? String ?? ""), threads: threads)
                #expect(
                    result.error?.code.rawValue == vector["error"] as? String,
                    "\(id): \(String(describing: result.error))")
                #expect(result.written.count == vector["streamedBeforeError"] as? Int, "\(id): streamed")
                // What was released is the plaintext's own first bytes (the README: "a verified prefix"),
                // not only as many bytes (a review).
                #expect(Self.plaintext(base).starts(with: result.written), "\(id): released bytes")
                // A regular file is read by position: the same code, and the same plaintext released.
                let positional = await Self.decrypt(
                    file, dataKey: Data(hex: vector["dataKey"] as? String ?? ""), threads: threads, positional: true)
                #expect(positional.error?.code == result.error?.code, "\(id): positional")
                #expect(positional.written == result.written, "\(id): positional released")
            }
        }
    }

    @Test func rangeVectors() async throws {
        let vectors = try #require(Self.root["ranges"] as? [[String: Any]])
        let errors = Self.root["decryptErrors"] as? [[String: Any]] ?? []
        #expect(vectors.count == 11)
        for vector in vectors {
            let id = vector["id"] as? String ?? "?"
            let base = vector["base"] as? String ?? ""
            let file: Data
            let dataKey: Data
            if let error = errors.first(where: { $0["id"] as? String == base }) {
                file = try await Self.edited(error)
                dataKey = Data(hex: error["dataKey"] as? String ?? "")
            } else {
                file = try await Self.file(of: base)
                let encrypt = Self.encryptVectors.first { $0["id"] as? String == base }
                dataKey = Data(hex: encrypt?["dataKey"] as? String ?? "")
            }
            var output = Data()
            var failure: FileFormatError?
            do {
                let (header, length, commitment) = try FileHeader.parse(file.prefix(8192 + 32))
                let keys = try FileKeys(dataKey: SymmetricKey(data: dataKey), header: header)
                try keys.verify(storedCommitment: commitment)
                let layout = try FileLayout(headerLength: length, fileSize: UInt64(file.count))
                try await FileStream.decryptRange(
                    keys: keys, layout: layout, start: UInt64(vector["start"] as? Int ?? 0),
                    end: UInt64(vector["end"] as? Int ?? 0),
                    readAt: { offset, count in file.subdata(in: Int(offset)..<min(file.count, Int(offset) + count)) },
                    write: { output.append($0) })
            } catch let error as FileFormatError {
                failure = error
            }
            if let expected = vector["error"] as? String {
                #expect(failure?.code.rawValue == expected, "\(id)")
            } else if let hex = vector["plaintext"] as? String {
                #expect(failure == nil && Self.hex(output) == hex, "\(id)")
            } else {
                #expect(failure == nil && output.count == vector["plaintextLength"] as? Int, "\(id)")
                #expect(Self.hex(SHA256.hash(data: output)) == vector["plaintextSha256"] as? String, "\(id)")
            }
        }
    }

    /// The limits of section 3: a writer past chunk 2^32 − 2 fails with
    /// `too_large`; a reader meeting piece 2^32 − 1 says `trailing_data`.
    @Test func chunkCountLimits() throws {
        let header = try FileHeader(salt: Data(count: 32), wrappedKey: "kms:v1:key_x:1:AAAA", context: [:])
        let keys = try FileKeys(dataKey: SymmetricKey(size: .bits256), header: header)
        let last = FileFormat.maxChunks - 1
        let sealed = try keys.seal(Data([1, 2, 3]), index: last, final: true)
        #expect(try keys.openPiece(sealed, index: last, isLast: true) == Data([1, 2, 3]))
        #expect(throws: FileFormatError(.tooLarge, "")) {
            _ = try keys.seal(Data(), index: FileFormat.maxChunks, final: true)
        }
        #expect(throws: FileFormatError(.trailingData, "")) {
            _ = try keys.openPiece(sealed, index: FileFormat.maxChunks, isLast: true)
        }
        #expect(throws: FileFormatError(.commitmentMismatch, "")) {
            _ = try FileKeys(dataKey: SymmetricKey(size: .bits128), header: header)
        }
    }

    /// Section 1 compares context keys as bytes: `K` and the Kelvin sign (U+212A), one key as Swift
    /// `String`s, are two here, kept apart by the header's equality and never merged into one
    /// dictionary entry (a review found `contextDictionary` kept the first and answered it for both).
    /// A header's bytes with these context pairs in this order (short keys and values), as a writer
    /// that does not sort would make them.
    static func rawHeader(_ pairs: [(String, String)]) -> [UInt8] {
        let wrapped = Array("kms:v1:key_x:1:AAAA".utf8)
        var ctx: [UInt8] = [0, UInt8(pairs.count)]
        for (key, value) in pairs {
            ctx += [0, UInt8(key.utf8.count)] + Array(key.utf8) + [0, UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let length = 10 + 32 + 2 + wrapped.count + ctx.count
        var bytes = FileFormat.magic + [FileFormat.version, UInt8(length >> 8), UInt8(length & 0xFF)]
        bytes += [UInt8](repeating: 7, count: 32) + [0, UInt8(wrapped.count)] + wrapped + ctx
        return bytes
    }

    /// The fixtures' `context-keys-out-of-order` and `context-key-duplicated` are encoded otherwise than
    /// their names say (a probe: a key length missing, so a field runs past the header; a stray `00 05`,
    /// so a key sorts before `app`): a reader without the order check passes them. Encoded right, keys out
    /// of order, repeated, or a prefix after its longer key are refused for their order.
    @Test func contextKeysOutOfOrderOrRepeatedAreRefused() throws {
        for pairs in [[("owner", "x"), ("app", "y")], [("app", "x"), ("app", "y")], [("app", "x"), ("ap", "y")]] {
            let bytes = Self.rawHeader(pairs) + [UInt8](repeating: 0, count: 32)
            let refused = #expect(throws: FileFormatError.self) { try FileHeader.parse(Data(bytes)) }
            #expect(
                refused?.code == .headerMalformed && refused?.message == "context keys are not strictly ascending",
                "\(pairs)")
        }
        #expect(
            try FileHeader.parse(Data(Self.rawHeader([("ap", "y"), ("app", "x")]) + [UInt8](repeating: 0, count: 32)))
                .header.context.count == 2)
    }

    @Test func canonicallyEquivalentContextKeysStayTwo() throws {
        func header(_ pairs: [(String, String)]) throws -> FileHeader {
            let bytes = Self.rawHeader(pairs)
            let parsed = try FileHeader.parse(Data(bytes + [UInt8](repeating: 0, count: 32))).header
            #expect(parsed.encoded == Data(bytes))
            return parsed
        }
        let both = try header([("K", "a"), ("\u{212A}", "b")])
        #expect(both.context.count == 2)
        #expect(both.contextDictionary == nil)
        #expect(try header([("K", "a")]) != header([("\u{212A}", "a")]))
        #expect(try header([("k", "v")]).contextDictionary == ["k": "v"])
    }

    /// Round trips around chunk boundaries, one and two threads.
    /// Read by position, a file that lost its last chunks meanwhile is
    /// `truncated` after the chunks before them, and a failing read is that
    /// read's error; on one thread or two.
    @Test(arguments: [1, 2])
    func positionalShortOrFailedReads(threads: Int) async throws {
        let dataKey = SymmetricKeyBytes.random(count: 32)
        let vector: [String: Any] = [
            "salt": Hex.encode(SymmetricKeyBytes.random(count: 32)), "dataKey": Hex.encode(dataKey),
            "wrappedKey": "kms:v1:key_x:1:AAAA", "context": [:] as [String: String], "plaintextLength": 5 * 65_536 + 9,
        ]
        let file = try await Self.encrypt(vector)
        var rest = file
        let (header, length, commitment) = try await FileStream.readHeader(read: { count in
            defer { rest = rest.dropFirst(count) }
            return Data(rest.prefix(count))
        })
        let keys = try FileKeys(dataKey: SymmetricKey(data: dataKey), header: header)
        try keys.verify(storedCommitment: commitment)
        let cut = file.count - 3 * FileFormat.sealedChunkSize + 5  // chunks 0 to 2 whole, 3 cut
        struct ReadFailed: Error {}
        for failing in [false, true] {
            var written = Data()
            do {
                try await FileStream.decrypt(
                    keys: keys, headerLength: length, fileSize: UInt64(file.count), threads: threads,
                    readAt: { offset, count in
                        let from = Int(offset)
                        if from + count > cut, failing { throw ReadFailed() }
                        return Data(file[min(from, cut)..<min(cut, from + count)])
                    }, write: { written.append($0) })
                Issue.record("a shrunk file decrypted")
            } catch let error as FileFormatError {
                #expect(!failing && error.code == .truncated)
            } catch {
                #expect(failing && error is ReadFailed)
            }
            // Chunks are read in runs: what precedes the damaged run is released, nothing after.
            #expect(Self.plaintext(vector).starts(with: written) && written.count % 65_536 == 0)
            #expect(written.count <= 3 * 65_536)
        }
    }

    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 3 * 65_536 + 5, 100 * 65_536 + 7])
    func roundTrip(size: Int) async throws {
        let vector: [String: Any] = [
            "salt": Hex.encode(SymmetricKeyBytes.random(count: 32)),
            "dataKey": Hex.encode(SymmetricKeyBytes.random(count: 32)),
            "wrappedKey": "kms:v1:key_x:1:AAAA", "context": ["app": "photos"], "plaintextLength": size,
        ]
        let file = try await Self.encrypt(vector)
        let chunks = max(1, (size + 65_535) / 65_536)
        #expect(file.count == 10 + 32 + 2 + 19 + 2 + 2 + 3 + 2 + 6 + 32 + size + 16 * chunks)
        for positional in [false, true] {
            for threads in [1, 2] {
                let back = await Self.decrypt(
                    file, dataKey: Data(hex: vector["dataKey"] as? String ?? ""), threads: threads,
                    positional: positional)
                #expect(back.error == nil && back.written == Self.plaintext(vector))
            }
        }
    }

    /// A review finding: a reader that returns what is available (a pipe) made a short block, which
    /// ended the file there: a valid file of a prefix of the input. Reads are completed now, for
    /// the header too; and any thread count is bounded (`.max` overflowed).
    @Test(arguments: [7, 1000, 65_535])
    func shortReadsDoNotEndTheFile(maxRead: Int) async throws {
        let vector: [String: Any] = [
            "salt": Hex.encode(SymmetricKeyBytes.random(count: 32)),
            "dataKey": Hex.encode(SymmetricKeyBytes.random(count: 32)),
            "wrappedKey": "kms:v1:key_x:1:AAAA", "context": ["app": "photos"], "plaintextLength": 3 * 65_536 + 5,
        ]
        let whole = try await Self.encrypt(vector)
        for threads in [1, 3, Int.max] {
            #expect(try await Self.encrypt(vector, threads: threads, maxRead: maxRead) == whole)
            let back = await Self.decrypt(
                whole, dataKey: Data(hex: vector["dataKey"] as? String ?? ""), threads: threads, maxRead: maxRead)
            #expect(back.error == nil && back.written == Self.plaintext(vector), "\(maxRead) \(threads)")
        }
    }

}
