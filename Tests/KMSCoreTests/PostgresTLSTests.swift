import Foundation
import KMSCore
import KMSTestSupport
import Logging
import Testing

@testable import KMSPostgres

/// Issue 17: `sslmode` and `sslrootcert` in `KMS_DATABASE_URL` mean what they
/// mean to libpq; anything else in the query is refused at start by name.
@Suite struct PostgresTLSTests {
    static let logger: Logger = {
        var logger = Logger(label: "kms-test-postgres-tls")
        logger.logLevel = .critical
        return logger
    }()

    /// The start-up message for `url` (these fail before any connection is tried).
    static func refusal(_ url: String) async -> String? {
        do {
            _ = try await KMSPostgres.PostgresDatabase.probe(url: url, logger: logger)
            return nil
        } catch let failure as StartupFailure {
            return failure.description
        } catch {
            return "\(error)"
        }
    }

    @Test func unknownParametersAndModesAreRefusedByName() async {
        let base = "postgres://kms:secret@127.0.0.1:1/kms"
        let unknown = await Self.refusal(base + "?sslmode=require&application_name=x")
        #expect(unknown?.contains("unknown parameter \"application_name\"") == true, "\(unknown ?? "nil")")
        let allow = await Self.refusal(base + "?sslmode=allow")
        #expect(allow?.contains("sslmode \"allow\" is not supported") == true, "\(allow ?? "nil")")
        let twice = await Self.refusal(base + "?sslmode=require&sslmode=disable")
        #expect(twice?.contains("given twice") == true, "\(twice ?? "nil")")
        let missing = await Self.refusal(base + "?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        #expect(missing?.contains("sslrootcert /nonexistent/ca.pem") == true, "\(missing ?? "nil")")
        // As libpq: the system's roots only with verify-full (review, 2026-12-03: `require` loaded them and
        // checked nothing).
        for mode in ["require", "verify-ca", "prefer", "disable"] {
            let weak = await Self.refusal(base + "?sslmode=\(mode)&sslrootcert=system")
            #expect(weak?.contains("sslrootcert=system needs sslmode=verify-full") == true, "\(mode): \(weak ?? "nil")")
        }
        // verify-ca checks no host name, so the system's roots alone would admit anyone's public certificate.
        let bareCA = await Self.refusal(base + "?sslmode=verify-ca")
        #expect(bareCA?.contains("sslmode=verify-ca needs sslrootcert=") == true, "\(bareCA ?? "nil")")
        let defaulted = await Self.refusal(base + "?sslrootcert=system")
        #expect(defaulted?.contains("sslrootcert=system needs") != true, "\(defaulted ?? "nil")")
        // A password's raw @ with ? or / after it: refused without quoting its rest (a review: "c@db/kms" was
        // named as an unknown parameter, "c@db/kms" as the database).
        for password in ["a@b?c", "a@b/c", "a@b#c"] {
            let split = await Self.refusal("postgres://kms:\(password)@127.0.0.1:1/kms")
            #expect(split?.contains("percent-encode") == true && split?.contains("c@") == false, "\(split ?? "nil")")
        }
        for failure in [unknown, allow, twice, missing] {
            #expect(failure?.contains("secret") == false, "the password must never appear in a message")
        }
    }

    /// Which URLs check the database's certificate: the others are warned about at start when the host is
    /// not loopback, since whoever intercepts the connection can enrol a client of its own (a review).
    @Test func onlyARootChecksTheDatabasesCertificate() throws {
        let base = "postgres://kms@db.internal/kms"
        for (query, checks) in [
            ("", false), ("?sslmode=disable", false), ("?sslmode=prefer", false), ("?sslmode=require", false),
            ("?sslmode=require&sslrootcert=/ca.pem", true), ("?sslmode=verify-ca&sslrootcert=/ca.pem", true),
            ("?sslmode=verify-full", true), ("?sslrootcert=system", true),
        ] {
            #expect(try PostgresURL(base + query).checksCertificate == checks, "\(query)")
        }
        #expect(try !PostgresURL("postgres://kms@/kms?host=/run/postgresql").checksCertificate)
        #expect(PostgresDatabase.isLoopback("127.0.0.2") && !PostgresDatabase.isLoopback("db.internal"))
        #expect(!PostgresDatabase.isLoopback("127.db.example") && PostgresDatabase.isLoopback("localhost"))
    }

    /// A Unix socket (libpq's `host=/folder`): no other local user can listen in the database's place there,
    /// as one can on a loopback port while the database is down and be handed the password (a review). The
    /// port names the socket; TLS is not spoken there, so a mode that asks for it is refused, as is a
    /// folder that is not an absolute path. The test cluster listens on one in its folder.
    @Test func aUnixSocketIsTakenFromTheHostParameter() async throws {
        let url = try PostgresURL("postgres://kms:secret@/kms?host=/var/run/postgresql/")
        #expect(url.socketPath == "/var/run/postgresql/.s.PGSQL.5432" && url.location == url.socketPath)
        #expect(try PostgresURL("postgres://kms@localhost:6543/kms?host=/tmp").socketPath == "/tmp/.s.PGSQL.6543")
        #expect(!url.description.contains("secret") && url.description.contains("socket="))
        for (query, said) in [
            ("host=run/postgresql", "an absolute path"), ("host=/tmp&sslmode=verify-full", "is not TLS"),
            ("host=/tmp&sslmode=require", "is not TLS"), ("host=/tmp&sslrootcert=/ca.pem", "is not TLS"),
        ] {
            let refused = await Self.refusal("postgres://kms:secret@/kms?" + query)
            #expect(
                refused?.contains(said) == true && refused?.contains("secret") == false, "\(query): \(refused ?? "nil")"
            )
        }
        guard let folder = ProcessInfo.processInfo.environment["KMS_TEST_POSTGRES_SOCKET_DIR"],
            let testURL = PostgresTestDatabase.url, var components = URLComponents(string: testURL)
        else { return }
        components.host = ""
        components.query = "host=\(folder)"
        let socketURL = try #require(components.string)
        #expect(try await KMSPostgres.PostgresDatabase.probe(url: socketURL, logger: Self.logger) == false)
        // The pool too: migrated, and a statement answered through it.
        let database = try await KMSPostgres.PostgresDatabase(
            url: socketURL, prefix: PostgresTestDatabase.newPrefix(), logger: Self.logger, maximumConnections: 1,
            callTimeout: PostgresTestDatabase.callTimeout)
        defer { database.shutdown() }
        var answered = 0
        for try await value in try await database.client.query("SELECT 7::int8", logger: Self.logger).decode(Int.self) {
            answered = value
        }
        #expect(answered == 7)
    }

    /// The test cluster of `.ci/postgres.sh` serves TLS with a certificate from
    /// a throw-away CA (`KMS_TEST_POSTGRES_TLS_CA`) naming 127.0.0.1 and
    /// localhost, and also accepts plain connections.
    @Test(
        .enabled(
            if: PostgresTestDatabase.url != nil
                && ProcessInfo.processInfo.environment["KMS_TEST_POSTGRES_TLS_CA"] != nil,
            "KMS_TEST_POSTGRES_URL or KMS_TEST_POSTGRES_TLS_CA is not set: PostgreSQL TLS modes are not tried"))
    func everyModeAgainstATLSServer() async throws {
        let environment = ProcessInfo.processInfo.environment
        let ca = try #require(environment["KMS_TEST_POSTGRES_TLS_CA"])
        let otherCA = try #require(environment["KMS_TEST_POSTGRES_OTHER_CA"])
        let testURL = try #require(PostgresTestDatabase.url)
        var components = try #require(URLComponents(string: testURL))
        func url(_ query: String, host: String? = nil) throws -> String {
            components.query = query
            if let host { components.host = host }
            return try #require(components.string)
        }
        let probe = { (url: String) in try await KMSPostgres.PostgresDatabase.probe(url: url, logger: Self.logger) }
        #expect(try await probe(url("sslmode=disable")) == false)
        #expect(try await probe(url("sslmode=prefer")) == true)
        #expect(try await probe(url("sslmode=require")) == true)
        #expect(try await probe(url("sslmode=require&sslrootcert=\(ca)")) == true)
        #expect(try await probe(url("sslmode=verify-ca&sslrootcert=\(ca)")) == true)
        #expect(try await probe(url("sslmode=verify-full&sslrootcert=\(ca)")) == true)
        #expect(try await probe(url("sslmode=verify-full&sslrootcert=\(ca)", host: "localhost")) == true)
        // 127.0.0.2 reaches the same server, but its certificate does not name that address.
        #expect(try await probe(url("sslmode=verify-ca&sslrootcert=\(ca)", host: "127.0.0.2")) == true)
        let misnamed = await Self.refusal(try url("sslmode=verify-full&sslrootcert=\(ca)", host: "127.0.0.2"))
        #expect(misnamed?.contains("TLS failed") == true, "\(misnamed ?? "connected")")
        // In words, never BoringSSL's text with the build machine's source path (a PostgreSQL operator's
        // walkthrough read `…/handshake.cc:320`).
        #expect(misnamed?.contains(".cc") == false, "\(misnamed ?? "connected")")
        // A certificate from a CA the URL does not trust stops start-up, in every verifying mode.
        for mode in ["require", "verify-ca", "verify-full"] {
            let refused = await Self.refusal(try url("sslmode=\(mode)&sslrootcert=\(otherCA)", host: "127.0.0.1"))
            #expect(
                refused?.contains("TLS failed: the server's certificate does not chain to sslrootcert") == true
                    && refused?.contains(".cc") == false, "\(mode): \(refused ?? "connected")")
        }
    }
}
