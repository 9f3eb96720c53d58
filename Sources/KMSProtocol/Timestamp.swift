public import Foundation

/// RFC 3339 UTC timestamps, as the wire contract writes them.
///
/// The server writes milliseconds (`2026-11-29T12:00:00.123Z`); readers accept
/// the form with and without fractional seconds (protocol v1 section 9).
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        date.formatted(
            Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(secondsFromGMT: 0) ?? .gmt))
    }

    public static func parse(_ text: String) -> Date? {
        let utc = TimeZone(secondsFromGMT: 0) ?? .gmt
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: utc).parse(text) {
            return date
        }
        return try? Date.ISO8601FormatStyle(timeZone: utc).parse(text)
    }

    /// Milliseconds since the Unix epoch, the unit of every `*_MS` setting.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}
