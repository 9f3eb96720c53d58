import Foundation

/// The lines of an audit file, split on LF *bytes*.
///
/// Why bytes: the chain hashes the bytes written, and Swift's `String`
/// treats CR LF as one character, so splitting decoded text on `"\n"` let a
/// line ending in CR LF hide after the last LF, unread (and a byte decoded
/// lossily as U+FFFD hashed like the one replaced). The server writes strict
/// UTF-8 lines that end in a lone LF and hold no CR, so anything else is not
/// an entry of ours.
public enum AuditLines {
    /// Every line that ends in LF, in order: its text, or nil when it is not
    /// strict UTF-8 or holds a CR. Bytes after the last LF (a torn last line)
    /// are not a line; callers that care check `data.last == LF` themselves.
    public static func split(_ data: Data) -> [String?] {
        var pieces = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        pieces.removeLast()  // what follows the last LF: empty, or a torn line
        return pieces.map { bytes in
            guard !bytes.contains(0x0D) else { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
    }
}
