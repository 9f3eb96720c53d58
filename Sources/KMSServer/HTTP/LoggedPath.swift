import KMSCore

/// The path as the server's request log shows it.
///
/// A path is the caller's to fill, and a secret typed in the wrong place
/// reaches it: a review revoked an access key by its secret (printed beside
/// the id by `kms clients access-key create`), and the 400 that answered it
/// logged the secret in the path. So a segment is shown only when it has the
/// shape of a name (at most 64 of `A-Z a-z 0-9 . _ -`: key ids, aliases,
/// client names and ids, route words), and a segment in the place of an
/// access key id only when it is one (`AKIA` and 16 base32 characters, which a
/// secret never is); any other segment is logged as `{…}`.
enum LoggedPath {
    static let hidden = "{…}"

    /// `template`: the route the path matched (its `{name}` parts say which
    /// segment holds what), or nil when it matched none.
    static func of(_ path: String, template: String?) -> String {
        let parts = template?.split(separator: "/", omittingEmptySubsequences: false)
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var shown: [Substring] = []
        shown.reserveCapacity(segments.count)
        for (index, segment) in segments.enumerated() {
            let part = parts.flatMap { index < $0.count ? $0[index] : nil }
            if part == "{accessKeyId}" {
                shown.append(AccessKeyRecord.isAccessKeyId(String(segment)) ? segment : Substring(hidden))
            } else {
                shown.append(isNameShaped(segment) ? segment : Substring(hidden))
            }
        }
        return shown.joined(separator: "/")
    }

    private static func isNameShaped(_ segment: Substring) -> Bool {
        segment.utf8.count <= 64
            && segment.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }
}
