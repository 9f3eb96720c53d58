/// BoringSSL's reason in a TLS failure's text (`CERTIFICATE_VERIFY_FAILED`), without the rest: its own text
/// names its source file on the build machine, which a message to a person must not repeat. One reading for
/// the CLI's connection errors and the PostgreSQL store's.
public enum TLSReason {
    /// The reason's token, or nil when the text names none.
    public static func code(in error: any Error) -> String? {
        let described = "\(error)"
        return described.range(of: "OPENSSL_internal:").map {
            String(described[$0.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" })
        }
    }
}
