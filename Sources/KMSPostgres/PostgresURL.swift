import Foundation
import KMSCore
import NIOSSL
import PostgresNIO

/// `KMS_DATABASE_URL`, read once at start: where the database is and how the
/// connection is protected.
///
/// `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]`
/// (also `postgresql://`), or a Unix socket's folder as libpq's `host` parameter
/// (`postgres://user@/database?host=/var/run/postgresql`; the port names the socket,
/// `.s.PGSQL.5432`). The three parameters mean what they mean to libpq,
/// so a URL that works with `psql` works here; any other parameter is refused
/// at start with its name, instead of being ignored as it once was.
struct PostgresURL: Sendable {
    /// libpq's `sslmode`, minus `allow` (plain first, TLS only if the server
    /// insists: PostgresNIO has no such mode and it protects nothing).
    enum SSLMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, plain otherwise; the certificate is
        /// not checked (libpq's default, and ours). Guards against a passive
        /// listener only.
        case prefer
        /// TLS or no connection; the certificate is not checked unless
        /// `sslrootcert` is given (then as `verify-ca`, as libpq does).
        case require
        /// TLS, and the chain must lead to `sslrootcert`, which it needs
        /// (libpq falls back to `~/.postgresql/root.crt`; we refuse to start);
        /// any host name is accepted.
        case verifyCA = "verify-ca"
        /// TLS, a chain to `sslrootcert` (or the system's roots), and the
        /// certificate names the host (DNS or IP SAN). What a database across
        /// a network should use.
        case verifyFull = "verify-full"
    }

    let host: String
    let port: Int
    let username: String
    let password: String?
    let database: String
    let sslMode: SSLMode
    /// The PEM file of trusted roots; nil means the system's trust store.
    let sslRootCert: String?
    /// The Unix socket to connect through instead of TCP (`host=/folder`): no other local user can
    /// listen in the database's place there, as one can on a loopback port while the database is down
    /// and be handed the password (a review), and no password need be sent (peer authentication).
    let socketPath: String?

    static let acceptedParameters: Set<String> = ["sslmode", "sslrootcert", "host"]

    init(_ url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql", let host = components.host,
            !host.isEmpty || components.queryItems?.contains(where: { $0.name == "host" }) == true
        else {
            throw StartupFailure(
                description: "KMS_DATABASE_URL must look like postgres://user:password@host:5432/database",
                isConfiguration: true)
        }
        // A password's raw `@` (with `?`, `#` or `/` around it) splits the URL elsewhere than meant, and the
        // password's rest would be quoted below as a parameter's name or the database (a review): refused,
        // quoting nothing.
        let afterHost =
            components.percentEncodedPath + (components.percentEncodedQuery ?? "")
            + (components.percentEncodedFragment ?? "")
        guard url.filter({ $0 == "@" }).count <= 1, !afterHost.contains("@") else {
            throw StartupFailure(
                description:
                    "KMS_DATABASE_URL holds more than one raw @: percent-encode the password's @, ?, # and / (%40, %3F, %23, %2F)",
                isConfiguration: true)
        }
        let database = String(components.path.drop { $0 == "/" })
        guard let user = components.user, !user.isEmpty, !database.isEmpty else {
            throw StartupFailure(description: "KMS_DATABASE_URL must name a user and a database", isConfiguration: true)
        }
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard Self.acceptedParameters.contains(item.name) else {
                throw StartupFailure(
                    description:
                        "KMS_DATABASE_URL: unknown parameter \(item.name.debugDescription) (accepted: sslmode, sslrootcert, host)",
                    isConfiguration: true)
            }
            guard parameters[item.name] == nil else {
                throw StartupFailure(
                    description: "KMS_DATABASE_URL: parameter \(item.name) is given twice", isConfiguration: true)
            }
            parameters[item.name] = item.value ?? ""
        }
        let modes = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
        // As libpq: with sslrootcert=system the default mode is verify-full, and a weaker one is refused
        // (with `require`, the system roots would have been loaded and then not checked at all).
        let systemRoots = parameters["sslrootcert"] == "system"
        let defaultMode = systemRoots ? SSLMode.verifyFull : SSLMode.prefer
        guard let mode = SSLMode(rawValue: parameters["sslmode"] ?? defaultMode.rawValue) else {
            throw StartupFailure(
                description:
                    "KMS_DATABASE_URL: sslmode \((parameters["sslmode"] ?? "").debugDescription) is not supported (one of: \(modes))",
                isConfiguration: true)
        }
        if let root = parameters["sslrootcert"], root.isEmpty {
            throw StartupFailure(
                description: "KMS_DATABASE_URL: sslrootcert needs a path to a PEM file (or system)",
                isConfiguration: true)
        }
        if systemRoots, mode != .verifyFull {
            throw StartupFailure(
                description:
                    "KMS_DATABASE_URL: sslrootcert=system needs sslmode=verify-full (as libpq: a weaker mode would not check the server against the system's roots)",
                isConfiguration: true)
        }
        // libpq refuses verify-ca without a root file; against the system's roots a chain check that
        // ignores the host name admits any certificate a public CA issued to anyone (a review).
        if mode == .verifyCA, parameters["sslrootcert"] == nil {
            throw StartupFailure(
                description:
                    "KMS_DATABASE_URL: sslmode=verify-ca needs sslrootcert=<PEM file of the CA that issued the database's certificate> (without it any publicly trusted certificate would pass; for a certificate from a public CA use sslmode=verify-full)",
                isConfiguration: true)
        }
        if let folder = parameters["host"] {
            guard folder.hasPrefix("/"), !folder.contains("\0") else {
                throw StartupFailure(
                    description:
                        "KMS_DATABASE_URL: host= takes the folder of the database's Unix socket, an absolute path (/var/run/postgresql); a network host goes before the path",
                    isConfiguration: true)
            }
            // TLS is not spoken over a Unix socket (libpq skips it there); a mode that asks for it would be
            // a promise not kept.
            guard parameters["sslmode"] == nil || mode == .disable || mode == .prefer, parameters["sslrootcert"] == nil
            else {
                throw StartupFailure(
                    description:
                        "KMS_DATABASE_URL: a Unix socket (host=\(folder)) is not TLS: leave out sslrootcert, and any sslmode but disable or prefer",
                    isConfiguration: true)
            }
        }
        // URLComponents.user/.password are already percent-decoded: decode once only.
        self.socketPath = parameters["host"].map {
            ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/.s.PGSQL.\(components.port ?? 5432)"
        }
        self.host = parameters["host"] == nil ? host : "localhost"
        self.port = components.port ?? 5432
        self.username = user
        self.password = components.password
        self.database = database
        self.sslMode = mode
        self.sslRootCert = parameters["sslrootcert"].flatMap { $0 == "system" ? nil : $0 }
    }

    /// The TLS settings for `sslmode`/`sslrootcert`, with the root file read
    /// now so that a missing or malformed file stops start-up with its path.
    func tlsConfiguration() throws -> TLSConfiguration? {
        guard socketPath == nil else { return nil }
        guard sslMode != .disable else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let path = sslRootCert {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw StartupFailure(
                    description: "KMS_DATABASE_URL: sslrootcert \(path) is not a readable PEM file",
                    isConfiguration: true)
            }
            guard !roots.isEmpty else {
                throw StartupFailure(
                    description: "KMS_DATABASE_URL: sslrootcert \(path) holds no certificate", isConfiguration: true)
            }
            tls.trustRoots = .certificates(roots)
        }
        tls.certificateVerification = certificateVerification
        return tls
    }

    /// How `sslmode` (and `require` with `sslrootcert`, as libpq has it) checks the database's certificate.
    private var certificateVerification: CertificateVerification {
        switch sslMode {
        case .disable, .prefer: .none
        case .require: sslRootCert == nil ? .none : .noHostnameVerification
        case .verifyCA: .noHostnameVerification
        case .verifyFull: .fullVerification
        }
    }

    /// Whether the database's certificate is checked against a root (`verify-ca`, `verify-full`, or
    /// `require` with `sslrootcert`): without that, TLS keeps out a passive listener only, and whoever
    /// can intercept the connection can act as the database.
    var checksCertificate: Bool { socketPath == nil && certificateVerification != .none }

    /// The pool's TLS mode.
    func clientTLS() throws -> PostgresClient.Configuration.TLS {
        guard let tls = try tlsConfiguration() else { return .disable }
        return sslMode == .prefer ? .prefer(tls) : .require(tls)
    }

    /// The probe connection's TLS mode (PostgresNIO wants a context here).
    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        guard let tls = try tlsConfiguration() else { return .disable }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw StartupFailure(description: "KMS_DATABASE_URL: cannot set up TLS: \(error)", isConfiguration: true)
        }
        return sslMode == .prefer ? .prefer(context) : .require(context)
    }
}

/// Printed or dumped, the password is left out (a review).
extension PostgresURL: CustomStringConvertible, CustomReflectable {
    var description: String {
        if let socketPath {
            return "postgres://\(username)\(password == nil ? "" : ":redacted")@/\(database) socket=\(socketPath)"
        }
        return
            "postgres://\(username)\(password == nil ? "" : ":redacted")@\(host):\(port)/\(database) sslmode=\(sslMode.rawValue)"
    }

    /// Where the database is, for messages: its socket, or `host:port`.
    var location: String { socketPath ?? "\(host):\(port)" }

    var customMirror: Mirror { Mirror(self, children: ["url": description]) }
}
