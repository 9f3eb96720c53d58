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
    /// Lazy: one line at a time, so a reader that stops at the first bad line
    /// holds nothing for the rest (a probe: a valid log followed by 100 MB of
    /// empty lines took 3.3 GB, about 33 bytes a line, and aborted the verifier
    /// where the memory was capped).
    public static func forward(_ data: Data) -> UnfoldSequence<String?, Data.Index> {
        sequence(state: data.startIndex) { start -> String?? in
            guard start < data.endIndex, let end = data[start...].firstIndex(of: 0x0A) else { return nil }
            defer { start = end + 1 }
            return .some(text(data[start..<end]))
        }
    }

    /// The same lines, last first (the server reads back to its last signature at start-up).
    public static func backward(_ data: Data) -> UnfoldSequence<String?, Data.Index?> {
        sequence(state: data.lastIndex(of: 0x0A)) { end -> String?? in
            guard let lineEnd = end else { return nil }
            let start = data[..<lineEnd].lastIndex(of: 0x0A).map { $0 + 1 } ?? data.startIndex
            end = start == data.startIndex ? nil : start - 1
            return .some(text(data[start..<lineEnd]))
        }
    }

    private static func text(_ bytes: Data) -> String? {
        guard !bytes.contains(0x0D) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
