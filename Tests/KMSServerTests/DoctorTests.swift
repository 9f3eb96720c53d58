import Foundation
import KMSClient
import KMSCore
import KMSProtocol
import Testing

/// `kms doctor` finds each deliberately broken set-up (issue 20).
@Suite struct DoctorTests {
    /// A store made by a real first start, then the server stopped.
    static func deployment() async throws -> (ServeProcess, [String: String]) {
        let server = try await ServeProcess()
        let data = server.folder.appendingPathComponent("data")
        let environment = [
            "KEY_STORE_PATH": data.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": data.appendingPathComponent("master.key").path,
            "KMS_AUDIT_LOG": data.appendingPathComponent("audit.log").path,
            "KMS_ADMIN_KEY_FILE": data.appendingPathComponent("admin.key").path,
            "KMS_WHITELIST": "127.0.0.1,::1,100.64.0.7",
        ]
        return (server, environment)
    }

    /// `deployment()` stopped, with the store's secret blob whose name begins with `blob`.
    static func stoppedDeployment(blob prefix: String) async throws -> (ServeProcess, [String: String], URL) {
        let (server, environment) = try await deployment()
        #expect(try await server.stop() == 0)
        let keys = URL(fileURLWithPath: try #require(environment["KEY_STORE_PATH"]))
        let name = try #require(
            try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasPrefix(prefix) })
        return (server, environment, keys.appendingPathComponent(name))
    }

    static func doctor(_ environment: [String: String], _ extra: [String] = []) async throws -> CLIProcess.Output {
        try await CLIProcess.run(["doctor"] + extra, environment: environment)
    }

    /// A review: a master key and an admin key owned by another uid were reported only by mode. Doctor
    /// fails on an owner that is neither the service's user (the store's owner) nor root.
    @Test(.enabled(if: geteuid() == 0, "chown to another user needs root"))
    func secretFilesAnotherUserOwnsFail() async throws {
        let (server, environment) = try await Self.deployment()
        #expect(try await server.stop() == 0)
        for name in ["KMS_MASTER_KEY_FILE", "KMS_ADMIN_KEY_FILE"] {
            let path = try #require(environment[name])
            #expect(chown(path, 1234, 1234) == 0)
            let found = try await Self.doctor(environment)
            #expect(
                found.status == 1 && found.stdout.contains("\(path) belongs to uid 1234"), "\(name): \(found.stdout)")
            #expect(chown(path, geteuid(), getegid()) == 0)
        }
        // What kms serve refuses to start on, doctor fails on too (the diff review: it passed).
        let keys = try #require(environment["KEY_STORE_PATH"])
        #expect(chmod(keys, 0o777) == 0)
        let open = try await Self.doctor(environment)
        #expect(open.status == 1 && open.stdout.contains("every user can put files in it"), "\(open.stdout)")
        #expect(chmod(keys, 0o700) == 0)
    }

    /// The store's audit key gone while its log has entries: `kms serve` refuses to start, so doctor fails
    /// (an operator-mistakes review found a warning and exit 0).
    /// On PostgreSQL with the database out of reach, what the database holds is not judged: the file store
    /// left beside it was, and an operator was told during an outage to move a good audit log aside (a
    /// PostgreSQL operator's walkthrough).
    @Test func anUnreachableDatabaseSkipsWhatItHolds() async throws {
        let (server, environment, _) = try await Self.stoppedDeployment(blob: "audit-")
        defer { withExtendedLifetime(server) {} }  // its folder holds the store and the log
        let found = try await Self.doctor(
            environment.merging([
                "KMS_STORE": "postgres",
                "KMS_DATABASE_URL": "postgres://kms:unused@127.0.0.1:\(TestPorts.take())/kms?sslmode=disable",
            ]) { $1 })
        #expect(found.status == 1 && found.stdout.contains("FAIL  database: "), "\(found.stdout)")
        for check in ["master key opens", "audit log"] {
            let line = found.stdout.split(separator: "\n").first { $0.hasPrefix("skip  \(check): ") } ?? ""
            #expect(line.contains("in the database, which cannot be reached"), "\(check): \(found.stdout)")
            #expect(!found.stdout.contains("ok    \(check):"), "\(check): \(found.stdout)")
        }
    }

    @Test func aMissingAuditKeyBesideALogFails() async throws {
        let (server, environment, blob) = try await Self.stoppedDeployment(blob: "audit-")
        try FileManager.default.moveItem(at: blob, to: server.folder.appendingPathComponent(blob.lastPathComponent))
        let found = try await Self.doctor(environment)
        #expect(found.status == 1 && found.stdout.contains("the store holds no audit key, but"), "\(found.stdout)")
        // The log moved away too: the next start makes a new key and chain, and says why in its first entry
        // (the review: both gone together left no trace, and doctor said the new log verified).
        let log = URL(fileURLWithPath: try #require(environment["KMS_AUDIT_LOG"]))
        try FileManager.default.moveItem(at: log, to: server.folder.appendingPathComponent("old-audit.log"))
        let again = try await ServeProcess(environment: environment)
        #expect(try await again.stop() == 0)
        #expect(again.logText.contains("a new chain begins at seq 1"), "\(again.logText)")
        let begun = try String(contentsOf: log, encoding: .utf8)
        #expect(
            begun.hasPrefix(#"{"v":2,"seq":1,"#) && begun.contains(#""type":"audit.new-log""#)
                && begun.contains("the store was started before"), "\(begun.prefix(400))")
    }

    /// A started store without its identity key, started with another master key: refused before a new
    /// identity is stored under that key (a review: one was, and every later start with the right key was
    /// refused by it); the right key then starts it.
    @Test func aWrongMasterKeyLeavesNoIdentityBehind() async throws {
        // The server's folder lives as long as the process object (its store is in it).
        let (server, environment, identity) = try await Self.stoppedDeployment(blob: "identity-")
        defer { withExtendedLifetime(server) {} }
        try FileManager.default.removeItem(at: identity)
        var wrong = environment
        wrong["KMS_MASTER_KEY"] = Data(repeating: 7, count: 32).base64EncodedString()
        wrong["KMS_PORT"] = "\(TestPorts.take())"
        let refused = try await CLIProcess.run(["serve"], environment: wrong)
        #expect(
            refused.status == 78 && refused.stderr.contains("does not open this store's audit key"), "\(refused.stderr)"
        )
        #expect(!FileManager.default.fileExists(atPath: identity.path))
        let again = try await ServeProcess(environment: environment)
        #expect(try await again.stop() == 0)
        // The right key makes a new identity, and says at warning level what that does to pinned clients (an
        // operator-mistakes review: a notice only).
        let warned = again.logText.split(separator: "\n").filter { $0.contains("its server identity key was gone") }
        #expect(warned.count == 1 && warned.allSatisfy { $0.contains(#""level":"warning""#) }, "\(again.logText)")
    }

    /// deploy.md: a check that cannot be made because the store was never started is `skip`, not `FAIL`
    /// (a review found three FAILs, and exit 1, on a deployment that had only been configured).
    @Test func aNeverStartedDeploymentSkipsWhatTheFirstStartMakes() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-doctor-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = folder.appendingPathComponent("data")
        let result = try await Self.doctor([
            "KEY_STORE_PATH": data.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": data.appendingPathComponent("master.key").path,
            "KMS_AUDIT_LOG": data.appendingPathComponent("audit.log").path,
            "KMS_ADMIN_KEY_FILE": data.appendingPathComponent("admin.key").path,
        ])
        #expect(result.status == 0 && !result.stdout.contains("FAIL"), "\(result.stdout)")
        for check in ["master key:", "master key opens:", "audit log:"] {
            #expect(result.stdout.contains("skip  \(check) not checked"), "\(check) \(result.stdout)")
        }
        #expect(!FileManager.default.fileExists(atPath: folder.path), "doctor changes nothing")
        // A master key that is given but cannot be read still fails (a review: skipped, exit 0, and the
        // server then refused to start).
        let broken = try await Self.doctor([
            "KEY_STORE_PATH": data.appendingPathComponent("keys").path, "KMS_MASTER_KEY": "not base64",
            "KMS_AUDIT_LOG": data.appendingPathComponent("audit.log").path,
        ])
        #expect(broken.status == 1 && broken.stdout.contains("FAIL  master key opens"), "\(broken.stdout)")
    }

    @Test func findsEachBrokenSetUp() async throws {
        let (server, environment) = try await Self.deployment()
        #expect(try await server.stop() == 0)
        let data = server.folder.appendingPathComponent("data")

        // As the first start leaves it: the master key beside the store and the admin key present are warnings.
        let fresh = try await Self.doctor(environment)
        #expect(fresh.status == 0, "\(fresh.stdout)")
        #expect(fresh.stdout.contains("WARN  master key") && fresh.stdout.contains("sits beside the store"))
        #expect(fresh.stdout.contains("WARN  admin key") && fresh.stdout.contains("ok    audit log"))
        #expect(fresh.stdout.contains("ok    store") && fresh.stdout.contains("ok    allowlist"))
        #expect(fresh.stdout.contains("ok    key records"), "\(fresh.stdout)")

        // Moved apart and the admin key gone: no warnings about them.
        let apart = server.folder.appendingPathComponent("secret")
        try FileManager.default.createDirectory(at: apart, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: data.appendingPathComponent("master.key"), to: apart.appendingPathComponent("master.key"))
        try FileManager.default.removeItem(at: data.appendingPathComponent("admin.key"))
        var tidy = environment
        tidy["KMS_MASTER_KEY_FILE"] = apart.appendingPathComponent("master.key").path
        let clean = try await Self.doctor(tidy)
        #expect(clean.status == 0 && !clean.stdout.contains("WARN"), "\(clean.stdout)")

        // A wide allowlist: a warning.
        var wide = tidy
        wide["KMS_WHITELIST"] = "0.0.0.0/0,::/0"
        #expect(try await Self.doctor(wide).stdout.contains("WARN  allowlist"))
        // The VPN's whole range is not only your devices (a review: doctor said ok to it); one device is.
        wide["KMS_WHITELIST"] = "127.0.0.1,100.64.0.0/10"
        let vpnRange = try await Self.doctor(wide).stdout
        #expect(
            vpnRange.contains("WARN  allowlist: KMS_WHITELIST admits a range of VPN addresses")
                && !vpnRange.contains("ok    allowlist"), "\(vpnRange)")
        wide["KMS_WHITELIST"] = "127.0.0.0/8,100.64.0.7,fd7a:115c:a1e0::7"
        #expect(try await Self.doctor(wide).stdout.contains("ok    allowlist"))
        // An allowlist without loopback beside the default trusted proxies (loopback): anything local is
        // let in by naming an allowlisted address in X-Forwarded-For (a review); a warning.
        var proxied = tidy
        proxied["KMS_WHITELIST"] = "100.64.0.9"
        let beyond = try await Self.doctor(proxied)
        #expect(
            beyond.stdout.contains("WARN  trusted proxies") && beyond.stdout.contains("127.0.0.1"), "\(beyond.stdout)")
        proxied["KMS_TRUSTED_PROXIES"] = ""
        #expect(try await Self.doctor(proxied).stdout.contains("ok    trusted proxies"))
        // A trusted range inside the allowlist: its hosts can speak for each other (a review of 2026-12-06).
        proxied["KMS_WHITELIST"] = "127.0.0.1,100.64.0.0/10"
        proxied["KMS_TRUSTED_PROXIES"] = "100.64.0.0/10"
        let ranges = try await Self.doctor(proxied)
        #expect(
            ranges.stdout.contains("WARN  trusted proxies") && ranges.stdout.contains("ranges, not single proxies")
                && !ranges.stdout.contains("ok    trusted proxies"), "\(ranges.stdout)")
        proxied["KMS_TRUSTED_PROXIES"] = "100.64.0.1"
        #expect(try await Self.doctor(proxied).stdout.contains("ok    trusted proxies"))
        // Limits set where they stop protecting (the same review): warned, not refused.
        #expect(try await Self.doctor(tidy).stdout.contains("ok    limits"))
        var limits = tidy
        limits["KMS_MAX_CONNECTIONS"] = "4"
        limits["KMS_MAX_BODY_BYTES"] = "\(64 << 20)"
        let unsafe = try await Self.doctor(limits).stdout
        #expect(
            unsafe.contains("WARN  limits: KMS_MAX_CONNECTIONS=4") && unsafe.contains("KMS_MAX_BODY_BYTES=67108864"),
            "\(unsafe)")

        // A store others can read: a failure, exit 1.
        let keys = data.appendingPathComponent("keys")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: keys.path)
        let loose = try await Self.doctor(tidy)
        #expect(loose.status == 1 && loose.stdout.contains("FAIL  store"), "\(loose.stdout)")
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: keys.path)

        // An admin key (0600) in a folder others can list: a failure (found by a security review).
        let shared = server.folder.appendingPathComponent("shared")
        try FileManager.default.createDirectory(
            at: shared, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let adminKey = shared.appendingPathComponent("admin.key")
        try Data("x".utf8).write(to: adminKey)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: adminKey.path)
        var sharedAdmin = tidy
        sharedAdmin["KMS_ADMIN_KEY_FILE"] = adminKey.path
        let listable = try await Self.doctor(sharedAdmin)
        #expect(
            listable.status == 1 && listable.stdout.contains("FAIL  file modes")
                && listable.stdout.contains("\(shared.path) is 755"), "\(listable.stdout)")
        // The same folder holding the store and the admin key: named once (an operator saw it twice).
        let storeParent = shared.appendingPathComponent("keys")
        try FileManager.default.createDirectory(
            at: storeParent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        sharedAdmin["KEY_STORE_PATH"] = storeParent.path
        let once = try await Self.doctor(sharedAdmin)
        #expect(
            once.stdout.components(separatedBy: "\(shared.path) is 755").count == 2, "\(once.stdout)")

        // An audit log elsewhere, in a folder others can write (they can replace the log), with a rotated
        // file others can read: both named (a probe found neither checked).
        let logs = server.folder.appendingPathComponent("logs")
        try FileManager.default.createDirectory(
            at: logs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: logs.path)
        let rotated = logs.appendingPathComponent("audit.log.000000000007")
        try Data().write(to: rotated)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: rotated.path)
        var elsewhere = tidy
        elsewhere["KMS_AUDIT_LOG"] = logs.appendingPathComponent("audit.log").path
        let open = try await Self.doctor(elsewhere)
        #expect(
            open.status == 1 && open.stdout.contains("FAIL  file modes")
                && open.stdout.contains("\(logs.path), the audit log's folder, is 777")
                && open.stdout.contains("\(rotated.path) is 644")
                && open.stdout.contains("chmod go-w \(logs.path) if nothing else writes there"), "\(open.stdout)")
        // A shared log folder others can only read (0755; /var/log is 0775 root:syslog) is not refused.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: logs.path)
        let onlyReadable = try await Self.doctor(elsewhere)
        #expect(!onlyReadable.stdout.contains("the audit log's folder"), "\(onlyReadable.stdout)")
        // Owned by another user (not root): named (only root can give a folder away).
        if getuid() == 0 {
            #expect(chown(logs.path, 4242, 4242) == 0)
            let owned = try await Self.doctor(elsewhere)
            #expect(owned.stdout.contains("belongs to uid 4242"), "\(owned.stdout)")
            #expect(chown(logs.path, getuid(), getgid()) == 0)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: logs.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: rotated.path)
        let tidied = try await Self.doctor(elsewhere)
        #expect(!tidied.stdout.contains("FAIL  file modes"), "\(tidied.stdout)")

        // A TLS key file for the AWS door others can read: a failure (a review found it unremarked).
        let tlsKey = server.folder.appendingPathComponent("tls.key")
        try Data("-----BEGIN PRIVATE KEY-----\n".utf8).write(to: tlsKey)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tlsKey.path)
        var door = tidy
        door["KMS_AWS_PORT"] = "8443"
        door["KMS_TLS_CERT_FILE"] = tlsKey.path
        door["KMS_TLS_KEY_FILE"] = tlsKey.path
        let tls = try await Self.doctor(door)
        #expect(tls.status == 1 && tls.stdout.contains("FAIL  tls key"), "\(tls.stdout)")

        // A master key others can read: a failure.
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o644], ofItemAtPath: apart.appendingPathComponent("master.key").path)
        let readable = try await Self.doctor(tidy)
        #expect(readable.status == 1 && readable.stdout.contains("FAIL  master key"), "\(readable.stdout)")
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o600], ofItemAtPath: apart.appendingPathComponent("master.key").path)

        // A damaged key file and alias file: a failure naming both (a probe found doctor green while
        // listing keys and backups failed on one).
        let store = data.appendingPathComponent("keys")
        let keyFile = store.appendingPathComponent("keys/key_damaged.json")
        let aliasFile = store.appendingPathComponent("aliases/damaged")
        try Data(#"{"format":"kms-key-v2", garbage"#.utf8).write(to: keyFile)
        try Data("garbage".utf8).write(to: aliasFile)
        let damaged = try await Self.doctor(tidy)
        #expect(damaged.status == 1 && damaged.stdout.contains("FAIL  key records: 2 damaged"), "\(damaged.stdout)")
        #expect(damaged.stdout.contains("keys/key_damaged.json") && damaged.stdout.contains("aliases/damaged"))
        try FileManager.default.removeItem(at: keyFile)
        try FileManager.default.removeItem(at: aliasFile)
        // A damaged client registry: the server refuses to start on it (a probe found doctor green).
        let clients = store.appendingPathComponent("clients.json")
        let kept = try Data(contentsOf: clients)
        try Data("garbage".utf8).write(to: clients)
        let registry = try await Self.doctor(tidy)
        #expect(
            registry.status == 1 && registry.stdout.contains("FAIL  key records: 1 damaged")
                && registry.stdout.contains("clients.json is corrupt"), "\(registry.stdout)")
        try kept.write(to: clients)

        // An edited audit log: a failure.
        let log = data.appendingPathComponent("audit.log")
        var text = try String(contentsOf: log, encoding: .utf8)
        text = text.replacingOccurrences(of: "server.start", with: "server.stort")
        try text.write(to: log, atomically: false, encoding: .utf8)
        let tampered = try await Self.doctor(tidy)
        #expect(tampered.status == 1 && tampered.stdout.contains("FAIL  audit log"), "\(tampered.stdout)")
    }

    /// A probe wiped a stopped server's log: doctor said ok, and after the next start verify said OK
    /// from seq 1 with nothing to tell. Doctor now judges the log as verify does (an empty log, a stale
    /// unsigned tail and missing first entries are warnings), and a start over an empty log under an
    /// older audit key begins with `audit.new-log`, which the server logs and verify and doctor name.
    @Test func aWipedOrCutLogIsNamed() async throws {
        let (server, environment) = try await Self.deployment()
        #expect(try await server.stop() == 0)
        let log = server.folder.appendingPathComponent("data/audit.log")
        let original = try Data(contentsOf: log)
        let lines = original.split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }
        let last = try #require(lines.last.flatMap(AuditChain.parse))
        let first = try await Self.doctor(environment)
        #expect(first.stdout.contains("ok    audit log"), "\(first.stdout)")

        // Entries after the last checkpoint, two minutes old: a crash's tail, or one written while stopped.
        let stale =
            #"{"v":2,"seq":\#(last.seq + 1),"ts":"\#(Timestamp.format(Date().addingTimeInterval(-120)))","prev":"\#(AuditChain.hash(lines[lines.count - 1]))","event":{"type":"key.rotate"}}"#
        try (original + Data((stale + "\n").utf8)).write(to: log)
        let tail = try await Self.doctor(environment)
        #expect(
            tail.stdout.contains("WARN  audit log") && tail.stdout.contains("after the last signed checkpoint"),
            "\(tail.stdout)")
        // The first entries gone (server.start and its checkpoint): checked from seq 2 on trust, said so.
        try Data((lines.dropFirst(2).joined(separator: "\n") + "\n").utf8).write(to: log)
        let cut = try await Self.doctor(environment)
        #expect(cut.stdout.contains("WARN  audit log") && cut.stdout.contains("entries 1...1"), "\(cut.stdout)")
        // Empty: nothing verified.
        try Data().write(to: log)
        let wiped = try await Self.doctor(environment)
        #expect(
            wiped.stdout.contains("WARN  audit log") && wiped.stdout.contains("holds no entries"), "\(wiped.stdout)")
        // Gone, with the store's audit key there: not "does not exist yet" (an operator-mistakes review).
        try FileManager.default.removeItem(at: log)
        let gone = try await Self.doctor(environment)
        #expect(
            gone.stdout.contains("WARN  audit log") && gone.stdout.contains("but the store's audit key is there")
                && !gone.stdout.contains("does not exist yet"), "\(gone.stdout)")

        // The next start over the wiped log, one torn byte left in it: its first entry says a new chain
        // began after an earlier log (an audit probe left `{` and the start took the wipe for a crash's
        // half-written line: `audit.repaired` alone, verify OK, doctor ok).
        try Data("{".utf8).write(to: log)
        let again = try await ServeProcess(environment: environment)
        #expect(try await again.stop() == 0)
        #expect(again.logText.contains("a new chain begins at seq 1"), "\(again.logText)")
        let restarted = try String(contentsOf: log, encoding: .utf8)
        #expect(restarted.hasPrefix(#"{"v":2,"seq":1,"#) && restarted.contains(#""type":"audit.new-log""#))
        #expect(restarted.contains(#""type":"audit.repaired""#), "the torn byte's cut is recorded too")
        let verified = try await CLIProcess.run(["audit", "verify"], environment: environment)
        #expect(verified.status == 0 && verified.stdout.contains("note: seq 1 ("), "\(verified.stdout)")
        #expect(verified.stdout.contains("audit.new-log"), "\(verified.stdout)")
        let named = try await Self.doctor(environment)
        #expect(named.stdout.contains("WARN  audit log") && named.stdout.contains("audit.new-log"), "\(named.stdout)")
        // A later start continues that log: no second marker. It takes up a crash's tail left before it.
        let newLines = restarted.split(separator: "\n").map(String.init)
        let newLast = try #require(newLines.last.flatMap(AuditChain.parse))
        let crashTail =
            #"{"v":2,"seq":\#(newLast.seq + 1),"ts":"\#(Timestamp.format(Date()))","prev":"\#(AuditChain.hash(newLines[newLines.count - 1]))","event":{"type":"key.rotate"}}"#
        try Data((restarted + crashTail + "\n").utf8).write(to: log)
        let third = try await ServeProcess(environment: environment)
        #expect(try await third.stop() == 0)
        let continued = try String(contentsOf: log, encoding: .utf8)
        #expect(continued.components(separatedBy: "audit.new-log").count == 2)
        // The checkpoint to keep says what it anchors that no signature vouched for, as verify does (a
        // review: it said neither the new log nor the entries a start took up).
        let kept = try await CLIProcess.run(["audit", "checkpoint"], environment: environment)
        #expect(kept.status == 0 && kept.stdout.contains(":"), "\(kept.stderr)")
        #expect(
            kept.stderr.contains("begins a new log")
                && kept.stderr.contains("entries \(newLast.seq + 1)...\(newLast.seq + 1), under this checkpoint"),
            "\(kept.stderr)")
    }

    /// A trusted proxy that does not set X-Forwarded-For: every client looks like the proxy.
    @Test func proxyWithoutForwardedForIsFound() async throws {
        let report = try await Self.proxyReport(trustedProxies: "127.0.0.1")
        #expect(report.contains("WARN  proxy"), "\(report)")
    }

    /// A review: doctor's own request (from loopback, the proxy's address here, without the header) was
    /// counted before the figure was read, so a proxy set-up warned on every run. `/metrics` is not counted.
    @Test func doctorsOwnRequestIsNotCounted() async throws {
        let settings = ["KMS_TRUSTED_PROXIES": "127.0.0.1"]
        let server = try await ServeProcess(environment: settings, probeHeaders: [("X-Forwarded-For", "127.0.0.1")])
        let environment = server.storeEnvironment.merging(settings) { $1 }
        let first = try await Self.doctor(environment, ["--url", server.url]).stdout
        let second = try await Self.doctor(environment, ["--url", server.url]).stdout
        #expect(try await server.stop() == 0)
        #expect(first.contains("ok    proxy: every request"), "\(first)")
        #expect(second.contains("ok    proxy: every request"), "\(second)")
    }

    /// A misspelled setting is named by doctor as `kms serve` names it (a review: `KMS_ALLOWLIST` left the
    /// default list, and doctor said the allowlist was fine).
    @Test func unreadSettingsAreWarnedAbout() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-doctor-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = try await Self.doctor(
            [
                "KEY_STORE_PATH": folder.appendingPathComponent("data/keys").path,
                "KMS_AUDIT_LOG": folder.appendingPathComponent("data/audit.log").path,
                "KMS_MASTER_KEY_FILE": folder.appendingPathComponent("data/master.key").path,
                "KMS_ALLOWLIST": "100.64.0.7/32", "KMS_KEY_GRACE_MS": "0",
            ], [])
        #expect(
            run.stdout.contains("WARN  settings: settings that kms does not read")
                && run.stdout.contains("KMS_ALLOWLIST") && !run.stdout.contains("100.64.0.7")
                && run.stdout.contains("WARN  settings: KMS_KEY_GRACE_MS is 0"), "\(run.stdout)")
    }

    /// The default trusted proxies are loopback, where local clients send no
    /// X-Forwarded-For, and where a proxy that sends none would open the
    /// allowlist: still a warning, which says both (a newcomer found the old
    /// one alarming; a review found that silencing it hid the proxy case).
    @Test func localClientsUnderTheDefaultProxiesAreExplained() async throws {
        let report = try await Self.proxyReport(trustedProxies: nil)
        #expect(report.contains("WARN  proxy") && report.contains("expected of local clients"), "\(report)")
        #expect(report.contains("KMS_TRUSTED_PROXIES= (empty)"), "\(report)")
    }

    /// A server that answers but refuses doctor's host is said to, not "does not answer" (an
    /// operator-mistakes hunt): loopback is a trusted proxy here, not an allowlisted client.
    @Test func aServerRefusingThisHostIsNamedSo() async throws {
        let settings = ["KMS_WHITELIST": "100.64.0.0/10", "KMS_TRUSTED_PROXIES": "127.0.0.1"]
        let server = try await ServeProcess(environment: settings, probeHeaders: [("X-Forwarded-For", "100.64.0.9")])
        let report = try await Self.doctor(
            server.storeEnvironment.merging(settings) { $1 }, ["--url", server.url]
        ).stdout
        #expect(try await server.stop() == 0)
        #expect(report.contains("refuses this host's address (KMS_WHITELIST)"), "\(report)")
        #expect(!report.contains("does not answer"), "\(report)")
    }

    /// Doctor's report after one local request without X-Forwarded-For.
    static func proxyReport(trustedProxies: String?) async throws -> String {
        let proxies = trustedProxies.map { ["KMS_TRUSTED_PROXIES": $0] } ?? [:]
        let server = try await ServeProcess(environment: proxies)
        let environment = server.storeEnvironment.merging(proxies) { $1 }
        _ = try await HTTPTransport(baseURL: server.url).send(
            TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        let after = try await Self.doctor(environment, ["--url", server.url])
        #expect(try await server.stop() == 0)
        return after.stdout
    }

    static let hasOpenSSL = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"].contains {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// A review: systemd passes a credential that `stat` shows as 0440 (the group bits are the mask of the
    /// service user's ACL entry), and doctor failed the master key for it. In `$CREDENTIALS_DIRECTORY` group
    /// read is accepted; elsewhere 0440 still fails.
    @Test func aCredentialsGroupReadIsNotAFailure() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-doctor-\(UUID().uuidString)")
        let credentials = folder.appendingPathComponent("credentials")
        try FileManager.default.createDirectory(
            at: credentials, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = credentials.appendingPathComponent("master.key")
        try Data((String(repeating: "A", count: 43) + "=\n").utf8).write(to: key)
        try FileManager.default.setAttributes([.posixPermissions: 0o440], ofItemAtPath: key.path)
        let store = [
            "KEY_STORE_PATH": folder.appendingPathComponent("data/keys").path,
            "KMS_AUDIT_LOG": folder.appendingPathComponent("data/audit.log").path,
        ]
        let credential = try await Self.doctor(store.merging(["CREDENTIALS_DIRECTORY": credentials.path]) { $1 })
        #expect(
            credential.stdout.contains("ok    master key") && !credential.stdout.contains("FAIL  master key"),
            "\(credential.stdout)")
        let plain = try await Self.doctor(store.merging(["KMS_MASTER_KEY_FILE": key.path]) { $1 })
        #expect(plain.stdout.contains("FAIL  master key") && plain.stdout.contains("is mode 440"), "\(plain.stdout)")
    }

    /// A review: instances whose `KMS_TLS_HOSTNAMES` the stored certificate does not match replaced it at
    /// each start while doctor said ok. Doctor now says the next start reissues it.
    @Test func namesTheStoredCertificateLacksAreFound() async throws {
        let port = "\(TestPorts.take())"
        let door = ["KMS_AWS_PORT": port, "KMS_AWS_HOST": "127.0.0.1", "KMS_TLS_HOSTNAMES": "kms-a.test"]
        let server = try await ServeProcess(environment: door)
        #expect(try await server.stop() == 0)
        let store = server.storeEnvironment
        let same = try await Self.doctor(store.merging(door) { $1 })
        #expect(
            same.stdout.contains("ok    certificate") && !same.stdout.contains("certificate names"), "\(same.stdout)")
        var other = door
        other["KMS_TLS_HOSTNAMES"] = "kms-b.test"
        let changed = try await Self.doctor(store.merging(other) { $1 })
        #expect(
            changed.stdout.contains("WARN  certificate names") && changed.stdout.contains("kms-a.test")
                && changed.stdout.contains("KMS_TLS_HOSTNAMES is kms-b.test"), "\(changed.stdout)")
    }

    /// The AWS door's certificate close to its end: a warning.
    @Test(.enabled(if: hasOpenSSL, "openssl is not installed: the certificate-expiry check is not tested"))
    func aCertificateNearItsEndIsFound() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-doctor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (certificate, key) = (folder.appendingPathComponent("c.pem"), folder.appendingPathComponent("k.pem"))
        let openssl = ChildProcess()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "3",
            "-subj", "/CN=kms", "-keyout", key.path, "-out", certificate.path,
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        try await offPool { openssl.waitUntilExit() }
        try #require(openssl.terminationStatus == 0, "openssl is needed for this test")
        let run = try await Self.doctor([
            "KEY_STORE_PATH": folder.appendingPathComponent("keys").path,
            "KMS_MASTER_KEY_FILE": folder.appendingPathComponent("master.key").path,
            "KMS_AWS_PORT": "8443", "KMS_TLS_CERT_FILE": certificate.path, "KMS_TLS_KEY_FILE": key.path,
        ])
        #expect(run.stdout.contains("WARN  certificate") && run.stdout.contains("(2 days)"), "\(run.stdout)")
    }
}
