public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// RFC 3339 UTC timestamps, as the wire contract writes them.
///
/// The server writes milliseconds (`2026-11-29T12:00:00.123Z`); readers accept
/// the form with and without fractional seconds (protocol v1 section 9).
public enum Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, built by hand: it is on every response and
    /// audit line, and a general date formatter costs tens of microseconds.
    public static func format(_ date: Date) -> String {
        let milliseconds = milliseconds(date)
        var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
        let millis = Int(milliseconds - Int64(seconds) * 1000)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "1970-01-01T00:00:00.000Z" }
        var out = [UInt8]()
        out.reserveCapacity(24)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = max(0, value)
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        out.append(UInt8(ascii: "."))
        digits(millis, 3)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    public static func parse(_ text: String) -> Date? {
        let utc = TimeZone(secondsFromGMT: 0) ?? .gmt
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: utc).parse(text) {
            return date
        }
        return try? Date.ISO8601FormatStyle(timeZone: utc).parse(text)
    }

    /// Milliseconds since the Unix epoch, the unit of every `*_MS` setting.
    /// Whole milliseconds, rounded down — after rounding to the microsecond,
    /// so that a time read back from its own text (`parse`, whose value is the
    /// nearest double, often a hair below) formats to the same text again.
    public static func milliseconds(_ date: Date) -> Int64 {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return micros >= 0 ? micros / 1000 : (micros - 999) / 1000
    }
}
