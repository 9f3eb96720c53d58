/// How long a text someone typed may be and still be repeated back: in an
/// error message, a parse error or a log line.
///
/// A text given in the wrong place may be a secret (a session token has at
/// least 32 characters, an AWS secret access key 40, a base64 AES key 44, a
/// PEM key hundreds), so anything longer than this is named by its length or
/// hidden, never shown. One rule for the server's request log, the client
/// library's refusals and the CLI's parse errors.
public enum Echo {
    /// The longest text shown as it is.
    public static let maxShownLength = 23

    /// Whether `text` is short enough to be shown.
    public static func mayShow(_ text: some StringProtocol) -> Bool { text.utf8.count <= maxShownLength }
}
