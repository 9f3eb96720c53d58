import KMSCore
import KMSProtocol

/// The path as the server's request log shows it.
///
/// A path is the caller's to fill, and a secret typed in the wrong place
/// reaches it: a review revoked an access key by its secret (printed beside
/// the id by `kms clients access-key create`), and the 400 that answered it
/// logged the secret in the path; a second review found that a rule of "what
/// looks like a name" still showed a session token (43 characters of
/// base64url) given as a key, and the pieces of a secret holding `/`. So:
///
/// - a path that matched a route (`template`) shows its literal words, and
///   each parameter only in a form no secret has: a key or client id (`key_`
///   or `cli_` and 22 base64url characters), an alias or name of at most 23
///   characters of `A-Z a-z 0-9 . _ -` (`Echo`: a token has at least 32), an access
///   key id (`AKIA` and 16 base32 characters, the only form shown there);
/// - a path that matched none shows only the words of the routes' paths
///   (`words`): a lowercase piece of a secret holding `/` is not one;
///
/// and anything else is logged as `{…}`.
enum LoggedPath {
    static let hidden = "{…}"

    /// `template`: the route the path matched (its `{name}` parts say which
    /// segment holds what), or nil when it matched none.
    static func of(_ path: String, template: String?, words: Set<Substring>) -> String {
        // A literal route (every `/crypto/…` call) is its own template: nothing to split.
        if let template, !template.contains("{") { return template }
        let parts = template?.split(separator: "/", omittingEmptySubsequences: false)
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var shown: [Substring] = []
        shown.reserveCapacity(segments.count)
        for (index, segment) in segments.enumerated() {
            let part = parts.flatMap { index < $0.count ? $0[index] : nil }
            let visible =
                switch part {
                case nil: segment.isEmpty || words.contains(segment)
                case "{accessKeyId}": AccessKeyRecord.isAccessKeyId(String(segment))
                case let part? where part.hasPrefix("{"): isIdentifier(segment) || isShortName(segment)
                case let part?: part == segment
                }
            shown.append(visible ? segment : Substring(hidden))
        }
        return shown.joined(separator: "/")
    }

    /// `key_` or `cli_` and 22 base64url characters: ids the server made, never secret.
    private static func isIdentifier(_ segment: Substring) -> Bool {
        segment.utf8.count == 26 && (segment.bytesHave(prefix: "key_") || segment.bytesHave(prefix: "cli_"))
            && segment.utf8.dropFirst(4).allSatisfy { isNameByte($0) && $0 != UInt8(ascii: ".") }
    }

    private static func isShortName(_ segment: Substring) -> Bool {
        Echo.mayShow(segment) && segment.utf8.allSatisfy(isNameByte)
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
