public import Foundation

/// The sealed envelope of protocol v1 sections 4 and 5:
/// `{ "seq", "iv", "ciphertext", "tag" }`, AES-256-GCM under the session key.
public struct SealedEnvelope: Sendable, Equatable {
    /// The largest sequence number (2^53 - 1): every JSON implementation holds it exactly.
    public static let maxSeq: UInt64 = (1 << 53) - 1
    /// The anti-replay window every server keeps (protocol v1 sections 4 and 9: at
    /// least this many seqs below the highest accepted one): the server's
    /// window, and how far apart a client lets its unanswered seqs be.
    public static let replayWindow: UInt64 = 1024

    public var seq: UInt64
    public var iv: Data
    public var ciphertext: Data
    public var tag: Data

    public init(seq: UInt64, iv: Data, ciphertext: Data, tag: Data) {
        self.seq = seq
        self.iv = iv
        self.ciphertext = ciphertext
        self.tag = tag
    }

    /// Why an envelope is not well-formed; the message names the field, never its value.
    public struct Malformed: Error, Equatable, Sendable {
        public let message: String
    }

    /// Parses the envelope JSON strictly: exactly the four members, `seq` a JSON
    /// integer in `lowestSeq`...2^53-1 (a `lowestSeq` past 2^53-1 counts as
    /// 2^53-1 on both paths), `iv` 12 bytes and `tag` 16 bytes of
    /// padded base64. A request's seq starts at 1 (the server passes 1, so a
    /// seq of 0 or below gets one message naming the whole range); a
    /// response's may be 0, the key exchange's confirmation.
    ///
    /// The common shape is read by `EnvelopeScanner` in one pass; anything it
    /// is not sure of (escapes, unknown or repeated members, bad values) goes
    /// through the general parser, which alone decides errors and their messages.
    public init(json bytes: some Sequence<UInt8>, lowestSeq: UInt64 = 0) throws(Malformed) {
        if let scanned = bytes.withContiguousStorageIfAvailable({ EnvelopeScanner.scan($0) }), let scanned,
            scanned.seq >= min(lowestSeq, Self.maxSeq)
        {
            self = scanned
            return
        }
        try self.init(generalJSON: bytes, lowestSeq: lowestSeq)
    }

    /// The general path of `init(json:)` (tests hold the scanner to it).
    package init(generalJSON bytes: some Sequence<UInt8>, lowestSeq: UInt64 = 0) throws(Malformed) {
        do throws(RequestFieldError) {
            var reader = try JSONObjectReader(bytes: bytes)
            let seq = try reader.integer("seq", in: Int64(min(lowestSeq, Self.maxSeq))...Int64(Self.maxSeq))
            let iv = try reader.bytes("iv", exactly: 12)
            let ciphertext = try reader.bytes("ciphertext", maxBytes: Int.max)
            let tag = try reader.bytes("tag", exactly: 16)
            try reader.finish()
            self.init(seq: UInt64(seq), iv: iv, ciphertext: ciphertext, tag: tag)
        } catch {
            throw Malformed(message: "malformed envelope: \(error.message)")
        }
    }

    /// The envelope's canonical JSON, written straight into bytes.
    public var json: Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + (ciphertext.count + 2) / 3 * 4)
        bytes.append(contentsOf: #"{"seq":"#.utf8)
        bytes.append(contentsOf: String(seq).utf8)
        bytes.append(contentsOf: #","iv":""#.utf8)
        Base64.append(iv, to: &bytes)
        bytes.append(contentsOf: #"","ciphertext":""#.utf8)
        Base64.append(ciphertext, to: &bytes)
        bytes.append(contentsOf: #"","tag":""#.utf8)
        Base64.append(tag, to: &bytes)
        bytes.append(contentsOf: #""}"#.utf8)
        return Data(bytes)
    }
}
