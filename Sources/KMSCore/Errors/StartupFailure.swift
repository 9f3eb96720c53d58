/// Why the server cannot start, in a sentence that names the setting to fix
/// (`KMS_MASTER_KEY_FILE …`, `KMS_DATABASE_URL …`).
///
/// The one error type of every start-up loader — master key, database,
/// folders, identity and audit keys, audit log — so `kms serve` reports any
/// of them the same way (its message, exit status 1) and never as a crash.
public struct StartupFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// A setting that cannot work as given (a malformed value, a named file the service cannot
    /// read): `kms serve` exits 78 (`EX_CONFIG`), as for a malformed variable, so that systemd's
    /// `RestartPreventExitStatus=78` stops restarting what a restart cannot fix (an operator's review
    /// found these exiting 1, restarted every 2 s).
    public let isConfiguration: Bool

    public init(description: String, isConfiguration: Bool = false) {
        self.description = description
        self.isConfiguration = isConfiguration
    }
}

extension StartupFailure {
    /// A store, unwrap or key failure while loading `what` at start-up: the
    /// log detail when the error has one (it never holds a secret).
    public init(_ what: String, _ error: KMSError) {
        self.init(description: "\(what): \(error.detail ?? error.message)")
    }
}
