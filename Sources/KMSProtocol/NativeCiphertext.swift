/// What a native ciphertext names, `kms:v1:<keyId>:<version>:<b64>` (api-v1): read by clients to check an
/// answer against itself and by `kms inspect-file` to show a file's key. Only the shape is read: a
/// ciphertext is opaque, and the server alone decides what it opens under.
public enum NativeCiphertext {
    /// The key id and version it names, or nil when it is not of that shape (a version that is not a
    /// positive decimal number included).
    public static func keyAndVersion(_ text: String) -> (keyId: String, version: Int)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "kms", parts[1] == "v1", !parts[2].isEmpty, !parts[4].isEmpty,
            parts[3].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), parts[3].first != "0",
            let version = Int(parts[3]), version > 0
        else { return nil }
        return (String(parts[2]), version)
    }
}
