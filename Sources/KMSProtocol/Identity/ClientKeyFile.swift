public import Crypto
import Foundation

/// identity-v1 section 6: a client's Ed25519 key on disk, PEM `PRIVATE KEY`,
/// unencrypted PKCS#8 (RFC 8410) whose DER is exactly the 16-byte prefix
/// below followed by the 32-byte seed, as pyca, OpenSSL and swift-crypto
/// write it. Only that form is read (13.10): the variant with an embedded
/// public key is refused, so two encodings of one key never circulate.
public enum ClientKeyFile {
    /// `302e020100300506032b657004220420`.
    static let derPrefix: [UInt8] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    public enum ReadError: Error, Equatable, Sendable {
        /// Not one PEM `PRIVATE KEY` block of base64.
        case notPEM
        /// A PEM block whose DER is not the 48-byte RFC 8410 form.
        case notEd25519PKCS8
    }

    /// The key in `pem` (LF or CRLF line ends).
    public static func parse(_ pem: String) throws(ReadError) -> Curve25519.Signing.PrivateKey {
        let lines = pem.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        guard lines.count >= 3, lines.first == "-----BEGIN PRIVATE KEY-----", lines.last == "-----END PRIVATE KEY-----"
        else { throw .notPEM }
        guard let der = Base64.decodeStrict(lines.dropFirst().dropLast().joined()) else { throw .notPEM }
        guard der.count == 48, Array(der.prefix(16)) == derPrefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        else { throw .notEd25519PKCS8 }
        return key
    }

    /// Whether `text` is, or holds, a private key: a PEM `PRIVATE KEY` block, or the base64 of this
    /// format's DER. For a tool to refuse it where a public key was asked, with advice (a newcomer's
    /// walkthrough pasted the key file into `--public-key`).
    public static func looksPrivate(_ text: String) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("-----BEGIN "), trimmed.contains("PRIVATE KEY-----") { return true }
        guard let der = Base64.decodeStrict(trimmed) else { return false }
        return der.count == 48 && Array(der.prefix(16)) == derPrefix
    }

    /// The file's text for `key`, LF line ends.
    public static func pem(_ key: Curve25519.Signing.PrivateKey) -> String {
        let der = Data(derPrefix) + key.rawRepresentation
        return "-----BEGIN PRIVATE KEY-----\n\(der.base64EncodedString())\n-----END PRIVATE KEY-----\n"
    }
}
