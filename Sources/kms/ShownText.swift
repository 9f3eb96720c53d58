import KMSProtocol

/// A line (or lines) for standard error whose literal parts are this
/// program's own words and whose interpolated values may come from anyone: a
/// path, a URL, a database's or a server's message. Each value's control and
/// invisible characters, line breaks included, are shown as `\u{…}` escapes,
/// so a file named with an escape sequence or a line break can neither act
/// on the terminal nor forge a line of output (`kms: all fine`); the
/// literals are kept as written, so their line breaks still end lines. Every
/// write to standard error takes one, so a value cannot reach it raw by
/// being forgotten.
struct ShownText: ExpressibleByStringInterpolation, Sendable, Hashable {
    /// The text as it goes to the terminal.
    private(set) var text: String

    init(stringLiteral value: String) { text = value }

    init(stringInterpolation: Interpolation) { text = stringInterpolation.text }

    /// A message from elsewhere as one line: all of it is a value.
    init(value: String) { text = Self.shown(value) }

    static func + (left: ShownText, right: ShownText) -> ShownText {
        var joined = left
        joined.text += right.text
        return joined
    }

    static func += (left: inout ShownText, right: ShownText) { left.text += right.text }

    /// `value` safe on one line of a terminal. Backslashes are left as they
    /// are: a value may already hold `TerminalText.escaped` text (a file's
    /// context, a server's message), which doubling would garble.
    static func shown(_ value: String) -> String {
        TerminalText.escaped(value, doublingBackslashes: false)
    }

    /// What ends a verb with an error, as ArgumentParser's `fullMessage`
    /// puts it (`Error: MESSAGE`, then for a usage error the usage lines),
    /// with the message on one line: it may quote a file's name, a database
    /// or a server. The usage lines after it are ArgumentParser's own, so
    /// they stay lines; a text not in that shape is made safe line by line.
    static func error(message: String, fullMessage: String) -> ShownText {
        let head = "Error: " + message
        guard !message.isEmpty else { return lineByLine(fullMessage) }
        // Not in the shape ArgumentParser gives it (it always is, with a message): all of it one line.
        guard fullMessage.hasPrefix(head) else { return ShownText(value: fullMessage) }
        var shown = lineByLine(String(fullMessage.dropFirst(head.count)))
        shown.text = "Error: " + Self.shown(message) + shown.text
        return shown
    }

    /// `text` made safe line by line, its line breaks kept: for text whose
    /// lines are this program's (ArgumentParser's usage lines).
    private static func lineByLine(_ text: String) -> ShownText {
        ShownText(
            stringLiteral: text.split(separator: "\n", omittingEmptySubsequences: false).map { shown(String($0)) }
                .joined(separator: "\n"))
    }

    struct Interpolation: StringInterpolationProtocol {
        fileprivate var text = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + 32 * interpolationCount)
        }

        mutating func appendLiteral(_ literal: String) { text += literal }

        mutating func appendInterpolation(_ value: some Any) { text += ShownText.shown(String(describing: value)) }

        /// An optional would show as `Optional("…")`: unwrap it first (the compiler's own warning for
        /// that does not reach a custom interpolation).
        @available(*, unavailable, message: "unwrap the optional first")
        mutating func appendInterpolation<T>(_ value: T?) {}

        /// Text already made safe (another `ShownText`), kept as it is.
        mutating func appendInterpolation(_ value: ShownText) { text += value.text }
    }
}
