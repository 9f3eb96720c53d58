import Foundation
import KMSCore
import KMSProtocol
import KMSServer
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsMatchTheAPIDocument() throws {
        let config = try KMSConfiguration(environment: [:])
        #expect(config.port == 3000 && config.host == "0.0.0.0")
        #expect(config.allowlist.map(\.description) == ["100.64.0.9", "127.0.0.0/8", "::1"])
        #expect(config.trustedProxies.map(\.description) == ["127.0.0.0/8", "::1"])
        #expect(
            config.sessions.ttlMs == 900_000 && config.sessions.sliding && config.sessions.maxLifetimeMs == 86_400_000)
        #expect(config.sessions.rotateMax == 5 && config.sessions.rotateWindowMs == 10_000)
        #expect(config.sessions.pendingPerAddress == 64 && config.sessions.pendingMax == 10_000)
        #expect(config.sessions.sessionsMax == 100_000 && config.sessions.initTtlMs == 60_000)
        #expect(config.sessions.sessionsPerClient == 1_000)
        #expect(try KMSConfiguration(environment: ["KMS_SESSIONS_PER_CLIENT": "5"]).sessions.sessionsPerClient == 5)
        #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_SESSIONS_PER_CLIENT": "0"])
        }
        #expect(config.keyGraceMs == 604_800_000 && config.maxBodyBytes == 1_048_576)
        #expect(config.environment == .development && config.logLevel == .info)
        #expect(config.keyStorePath.path.hasSuffix("data/keys"))
        #expect(config.auditTimeoutMs == 2_000)
        // An empty whitelist means the default, an empty proxy list trusts none.
        let empty = try KMSConfiguration(environment: ["KMS_WHITELIST": "", "KMS_TRUSTED_PROXIES": ""])
        #expect(empty.allowlist.count == 3 && empty.trustedProxies.isEmpty)
        // Set to nothing: no prefix, the key from its file, and the AWS door off.
        // A setting kms reads nowhere is named for the start's warning (a probe: `KMS_ALLOWLIST` was ignored
        // without a word and the default allowlist applied); the client's settings and test tooling are not.
        let misspelled = try KMSConfiguration(environment: [
            "KMS_ALLOWLIST": "10.0.0.1", "KMS_WHITELST": "x", "KMS_URL": "http://x:1", "KMS_TEST_POSTGRES_URL": "x",
            "KMS_PORT": "3000", "PATH": "/bin",
        ])
        #expect(misspelled.unreadSettings == ["KMS_ALLOWLIST", "KMS_WHITELST"])
        // An allowlist of every address is warned about at start, not only by doctor (a newcomer's walkthrough).
        let open = try KMSConfiguration(environment: ["KMS_WHITELIST": "0.0.0.0/0,::/0,192.168.1.0/24"])
        #expect(
            open.settingWarnings.contains {
                $0.hasPrefix(
                    "KMS_WHITELIST admits every address of a family (0.0.0.0/0: every IPv4 address, ::/0: every IPv6 address):"
                )
            },
            "\(open.settingWarnings)")
        #expect(!config.settingWarnings.contains { $0.contains("every address") })
        // Each named with the setting it is near, when one is (a newcomer's walkthrough: client typos).
        #expect(
            misspelled.unreadSettingsWarning?.hasSuffix("KMS_ALLOWLIST, KMS_WHITELST (KMS_WHITELIST?)") == true,
            "\(misspelled.unreadSettingsWarning ?? "")")
        #expect(
            ConfigVariable.described(["KMS_SERVER_FINGERPRNT", "KMS_ULR", "KMS_SOMETHING_ELSE"])
                == "KMS_SERVER_FINGERPRNT (KMS_SERVER_FINGERPRINT?), KMS_ULR (KMS_URL?), KMS_SOMETHING_ELSE")
        // The project's own scripts' names are not settings gone unread (a review: the AWS interop suite's).
        #expect(ConfigVariable.unread(in: ["KMS_INTEROP_AWS_URL", "KMS_BIN"]).isEmpty)
        #expect(ConfigVariable.unread(in: ["KMS_FINGERPRINT"]) == ["KMS_FINGERPRINT"])
        // A client verb suggests only its own settings, by spelling or by their distinctive word (a review).
        let suggested = ["KMS_ULR", "KMS_BASE_URL", "KMS_FINGERPRINT", "KMS_KEY_FILE", "KMS_HOME", "KMS_KEY_ID"].map {
            ConfigVariable.clientSuggestion(for: $0)
        }
        #expect(
            suggested == ["KMS_URL", "KMS_URL", "KMS_SERVER_FINGERPRINT", "KMS_CLIENT_KEY_FILE", nil, nil],
            "\(suggested)")
        // 0 is not "off" (a probe: it opened the door on a random port on every address).
        #expect(throws: KMSConfiguration.Invalid.self) { try KMSConfiguration(environment: ["KMS_AWS_PORT": "0"]) }
        #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_AWS_PORT": "8443", "KMS_AWS_HOST": "127.0.0.1/8"])
        }
        let none = try KMSConfiguration(environment: ["KMS_TOKEN_PREFIX": "", "KMS_MASTER_KEY": "", "KMS_AWS_PORT": ""])
        #expect(none.sessions.tokenPrefix == nil && none.masterKeyBase64 == nil && none.aws == nil)
    }

    /// aws-kms-v1 section 1: plain HTTP on a loopback `KMS_AWS_HOST` only, any loopback address (127.0.0.2
    /// was refused: a conformance review).
    @Test func plainHTTPOnTheAWSDoorNeedsALoopbackHost() throws {
        for host in ["127.0.0.1", "127.0.0.2", "127.255.0.9", "::1", "localhost", "::ffff:127.0.0.3"] {
            let config = try KMSConfiguration(environment: [
                "KMS_AWS_PORT": "8443", "KMS_AWS_HOST": host, "KMS_AWS_ALLOW_PLAIN_HTTP": "true",
            ])
            #expect(config.aws?.allowPlainHTTP == true, "\(host)")
        }
        for host in ["0.0.0.0", "::", "100.64.0.9", "128.0.0.1", "::2", "kms.example", "fe80::1"] {
            #expect(throws: KMSConfiguration.Invalid.self, "\(host)") {
                try KMSConfiguration(environment: [
                    "KMS_AWS_PORT": "8443", "KMS_AWS_HOST": host, "KMS_AWS_ALLOW_PLAIN_HTTP": "true",
                ])
            }
        }
    }

    /// The self-signed certificate's name constraints carry each name, and Go
    /// refuses a whole certificate whose constraint is no host name (a review).
    @Test func tlsHostNamesAreHostNamesOrAddresses() throws {
        let good = try KMSConfiguration(environment: [
            "KMS_AWS_PORT": "8443", "KMS_TLS_HOSTNAMES": "kms.tailnet.example, 100.64.0.1,fd00::1,nas-2",
        ])
        #expect(good.aws?.hostnames == ["kms.tailnet.example", "100.64.0.1", "fd00::1", "nas-2"])
        for bad in [
            "kms.example.", "a..b", "*.example", "-kms", "kms-", "k ms", "käse.example",
            String(repeating: "a", count: 64), "kms.example,", "a,,b",
        ] {
            #expect(throws: KMSConfiguration.Invalid.self, "\(bad)") {
                try KMSConfiguration(environment: ["KMS_AWS_PORT": "8443", "KMS_TLS_HOSTNAMES": bad])
            }
        }
        // Empty is none; a long refused item is named by its length (a review: shown whole, empty items dropped).
        #expect(
            try KMSConfiguration(environment: ["KMS_AWS_PORT": "8443", "KMS_TLS_HOSTNAMES": " "]).aws?.hostnames == [])
        let long = String(repeating: "x", count: 40) + " secret"
        let refused = #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_AWS_PORT": "8443", "KMS_TLS_HOSTNAMES": long])
        }
        #expect(
            refused.map { !"\($0)".contains("secret") && "\($0)".contains("47 bytes") } == true,
            "\(String(describing: refused))")
    }

    @Test(arguments: [
        ("KMS_PORT", "0"), ("KMS_PORT", "65536"), ("KMS_PORT", "abc"), ("KMS_SESSION_TTL_MS", "15m"),
        ("KMS_SESSION_TTL_MS", "-1"), ("KMS_SESSION_SLIDING", "maybe"), ("KMS_WHITELIST", "10.0.0.1/8"),
        ("KMS_WHITELIST", "10.0.0.0/33"), ("KMS_WHITELIST", "10.0.0.0/8,,::1"), ("KMS_WHITELIST", "example.com"),
        ("KMS_TRUSTED_PROXIES", "fe80::1%eth0"), ("KMS_TRUSTED_PROXIES", "::1/129"), ("KMS_ENV", "staging"),
        ("KMS_LOG_LEVEL", "verbose"), ("KMS_TOKEN_PREFIX", "bad prefix"),
        ("KMS_TOKEN_PREFIX", String(repeating: "p", count: 65)), ("KMS_MAX_BODY_BYTES", "1e6"),
        ("KMS_ROTATE_MAX", "0"), ("KMS_AUDIT_TIMEOUT_MS", "99"), ("KMS_AUDIT_TIMEOUT_MS", "15001"),
        ("KMS_DATABASE_TIMEOUT_MS", "999"), ("KMS_DATABASE_TIMEOUT_MS", "15001"), ("KMS_KEY_MAX_VERSIONS", "1"),
        ("KMS_KEY_MAX_VERSIONS", "10001"), ("KMS_MAX_KEYS", "0"), ("KMS_MAX_KEYS", "10000001"),
        // Numbers are digits only (`Int` took a sign).
        ("KMS_PORT", "+3000"), ("KMS_SESSION_TTL_MS", "-0"), ("KMS_TEST_CLOCK_OFFSET_MS", "+5"),
        ("KMS_HOST", "kms..lan"), ("KMS_HOST", "10.0.0.1%eth0"), ("KMS_HOST", "fe80::1%"),
        // A listen address that can be no address or name: 78 at parse, not 1 at bind (a probe's Left).
        ("KMS_HOST", "999.1.1.1"), ("KMS_HOST", "::1x"), ("KMS_HOST", "[::1]"), ("KMS_HOST", "0.0.0.0:3000"),
        ("KMS_HOST", "kms host"), ("KMS_HOST", "-kms.lan"),
        // Set but empty: refused, not the default (api-v1: nothing falls back silently).
        ("KMS_PORT", ""), ("KMS_SESSION_TTL_MS", " "), ("KMS_SESSION_SLIDING", ""), ("KMS_ENV", ""),
        ("KMS_LOG_LEVEL", ""), ("KMS_CLIENT_AUTH", ""), ("KMS_STORE", ""), ("KMS_HOST", ""), ("KEY_STORE_PATH", ""),
        ("KMS_AUDIT_LOG", ""), ("KMS_DATABASE_PREFIX", ""),
    ])
    func badValuesNameTheirVariable(_ name: String, _ value: String) {
        let error = #expect(throws: KMSConfiguration.Invalid.self) { try KMSConfiguration(environment: [name: value]) }
        #expect(error?.variable == name)
    }

    /// An IP literal, or a name left to the bind (it may resolve only once a VPN is up).
    @Test(arguments: [
        "127.0.0.1", "0.0.0.0", "::", "::1", "fd7a:115c:a1e0::1", "localhost", "kms.tail1234.ts.net", "Box-1",
        "kms_server", "kms.tail1234.ts.net.", "fe80::1%eth0", "::ffff:127.0.0.1",
    ])
    func listenHostsTakeAddressesAndNames(_ host: String) throws {
        #expect(try KMSConfiguration(environment: ["KMS_HOST": host]).host == host)
    }

    @Test(arguments: ["true", "TRUE", "1", "yes", "On"])
    func booleansTrue(_ text: String) throws {
        #expect(try KMSConfiguration(environment: ["KMS_SESSION_SLIDING": text]).sessions.sliding)
    }

    @Test(arguments: ["false", "False", "0", "no", "OFF"])
    func booleansFalse(_ text: String) throws {
        #expect(try !KMSConfiguration(environment: ["KMS_SESSION_SLIDING": text]).sessions.sliding)
    }

    @Test func addressListsAcceptIPv4IPv6AndMappedAddresses() throws {
        let config = try KMSConfiguration(environment: ["KMS_WHITELIST": " 10.0.0.0/8, 2001:db8::/32 ,192.168.1.7"])
        let resolver = ClientAddressResolver(allowlist: config.allowlist, trustedProxies: [])
        for (address, allowed) in [
            ("10.1.2.3", true), ("::ffff:10.1.2.3", true), ("11.0.0.1", false), ("2001:db8::5", true),
            ("2001:db9::5", false), ("192.168.1.7", true), ("192.168.1.8", false),
        ] {
            let outcome = resolver.resolve(peer: IPAddress(address), forwardedFor: [])
            #expect((outcome == .allowed(try #require(IPAddress(address)))) == allowed, "\(address)")
        }
        // Text past a NUL is not dropped (C reads up to it): a `.env` line parsed as the address before it.
        #expect(IPAddress("8.8.8.8\u{0}junk") == nil && IPAddress("::1\u{0}") == nil)
        #expect(throws: (any Error).self) { try KMSConfiguration(environment: ["KMS_WHITELIST": "8.8.8.8\u{0}junk"]) }
    }

    @Test func multiHopChainsUseTheRightMostUntrustedHop() throws {
        let resolver = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "100.64.0.0/10")],
            trustedProxies: [try AddressRange(parsing: "10.0.0.0/8"), try AddressRange(parsing: "fd00::/8")])
        let proxy = IPAddress("10.0.0.2")
        #expect(
            resolver.resolve(peer: proxy, forwardedFor: ["100.64.0.9, 10.0.0.3"]) == .allowed(IPAddress("100.64.0.9")!))
        #expect(
            resolver.resolve(peer: IPAddress("fd00::1"), forwardedFor: ["100.64.0.9", "10.0.0.3"])
                == .allowed(IPAddress("100.64.0.9")!))
        #expect(
            resolver.resolve(peer: proxy, forwardedFor: ["100.64.0.9, 8.8.8.8, 10.0.0.3"])
                != .allowed(IPAddress("100.64.0.9")!))
        #expect(
            resolver.resolve(peer: IPAddress("100.64.0.9"), forwardedFor: ["8.8.8.8"])
                == .allowed(IPAddress("100.64.0.9")!))
        for malformed in [["100.64.0.9, garbage"], ["garbage, 10.0.0.3"], ["100.64.0.9", ""]] {
            if case .refused = resolver.resolve(peer: proxy, forwardedFor: malformed) {
            } else {
                Issue.record("a malformed hop the walk reaches must be refused: \(malformed)")
            }
        }
        // Left of the client's hop the client wrote what it liked: not read (a review found `unknown` or
        // a port there refused the request, against docs/threat-model.md).
        for written in [["unknown, 100.64.0.9"], ["1.2.3.4:5678, 100.64.0.9, 10.0.0.3"], ["_hidden", "100.64.0.9"]] {
            #expect(resolver.resolve(peer: proxy, forwardedFor: written) == .allowed(IPAddress("100.64.0.9")!))
        }
        if case .refused = resolver.resolve(peer: nil, forwardedFor: []) {
        } else {
            Issue.record("no peer must be refused")
        }
    }

    /// The path settings read from the folder `kms serve` starts in are named (the defaults all are).
    @Test func relativePathSettingsAreNamed() throws {
        #expect(
            try KMSConfiguration(environment: [:]).relativePathSettings == [
                "KEY_STORE_PATH", "KMS_AUDIT_LOG", "KMS_ADMIN_KEY_FILE", "KMS_MASTER_KEY_FILE",
            ])
        let absolute = try KMSConfiguration(environment: [
            "KEY_STORE_PATH": "/srv/kms/keys", "KMS_AUDIT_LOG": "/srv/kms/audit.log",
            "KMS_ADMIN_KEY_FILE": "/srv/kms/admin.key", "KMS_MASTER_KEY_FILE": "keys/master.key",
        ])
        #expect(absolute.relativePathSettings == ["KMS_MASTER_KEY_FILE"])
    }

    /// Trusted proxies outside the allowlist widen it (X-Forwarded-For may name any allowlisted address).
    @Test func trustedProxiesBeyondTheAllowlistAreNamed() throws {
        let loopback = [try AddressRange(parsing: "127.0.0.0/8"), try AddressRange(parsing: "::1")]
        let narrowed = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "100.64.0.9")], trustedProxies: loopback)
        #expect(narrowed.proxiesBeyondAllowlist.map(\.description) == ["127.0.0.0/8"])
        // One address is the operator's proxy, listed on purpose: not named.
        let oneProxy = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "100.64.0.9")],
            trustedProxies: [try AddressRange(parsing: "127.0.0.1")])
        #expect(oneProxy.proxiesBeyondAllowlist.isEmpty)
        let usual = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "100.64.0.9"), try AddressRange(parsing: "127.0.0.1")] + [
                loopback[1]
            ],
            trustedProxies: [try AddressRange(parsing: "127.0.0.1")] + [loopback[1]])
        #expect(usual.proxiesBeyondAllowlist.isEmpty)
        // Loopback is one place: 127.0.0.2 may as well connect from 127.0.0.1.
        let anyLoopback = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "127.0.0.1")], trustedProxies: loopback)
        #expect(anyLoopback.proxiesBeyondAllowlist.isEmpty)
        let lan = ClientAddressResolver(
            allowlist: [try AddressRange(parsing: "100.64.0.0/10"), try AddressRange(parsing: "10.0.0.5")],
            trustedProxies: [try AddressRange(parsing: "10.0.0.0/8")])
        #expect(lan.proxiesBeyondAllowlist.map(\.description) == ["10.0.0.0/8"])
        // Covered by the allowlist in two pieces: not named (it was); a piece short, named.
        let pieces = ["10.0.0.0/24", "10.0.1.0/25", "10.0.1.128/25", "fd00::/9", "fd80::/9"]
        let split = ClientAddressResolver(
            allowlist: try pieces.map { try AddressRange(parsing: $0) },
            trustedProxies: [try AddressRange(parsing: "10.0.0.0/23"), try AddressRange(parsing: "fd00::/8")])
        #expect(split.proxiesBeyondAllowlist.isEmpty)
        let short = ClientAddressResolver(
            allowlist: try pieces.dropLast(2).dropFirst().map { try AddressRange(parsing: $0) } + [
                try AddressRange(parsing: "::/0")
            ],
            trustedProxies: [try AddressRange(parsing: "10.0.0.0/23"), try AddressRange(parsing: "::ffff:10.0.0.0/24")])
        #expect(short.proxiesBeyondAllowlist.map(\.description) == ["10.0.0.0/23", "::ffff:10.0.0.0/24"])
        #expect(throws: AddressRange.ParseError.self) { try AddressRange(parsing: "10.0.0.0/+8") }
    }

    @Test func dotEnvParsing() throws {
        let values = try DotEnv.parse(
            """
            # comment
            KMS_PORT=4000
            export KMS_HOST = "127.0.0.1"
            KMS_TOKEN_PREFIX='pfx_'
            KMS_ENV=production # trailing comment

            """)
        #expect(
            values == [
                "KMS_PORT": "4000", "KMS_HOST": "127.0.0.1", "KMS_TOKEN_PREFIX": "pfx_", "KMS_ENV": "production",
            ])
        #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("NOT A LINE") }
        #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("A=\"open") }
        // A comment after a quoted value, and a value holding its quote character (a probe: "unterminated").
        #expect(try DotEnv.parse("A=\"10.0.0.1\" # lan\nB='it's'\n") == ["A": "10.0.0.1", "B": "it's"])
        #expect(try DotEnv.parse("A=\"/var/log/kms.log\" # see \"audit\"\n") == ["A": "/var/log/kms.log"])
        // A comment after a tab is a comment too (a review: it became part of the path); a # inside a word is not.
        #expect(
            try DotEnv.parse("A=/var/lib/kms/audit.log\t# note\nB=a#b\n") == [
                "A": "/var/lib/kms/audit.log", "B": "a#b",
            ])
        #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("A=\"v\" trailing") }
        // Set twice: refused, naming both lines (a probe: the last won without a word).
        let twice = #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("A=1\n\nA=2\n") }
        #expect(twice?.description == ".env line 3: A is set already on line 1")
        // CRLF line ends (a file saved on Windows): each line its own setting (a review: the file was one line,
        // its first setting the rest of the file), line numbers counted as in an LF file.
        #expect(try DotEnv.parse("A=1\r\nexport B='2'\r\n# c\r\nC=3") == ["A": "1", "B": "2", "C": "3"])
        let crlfTwice = #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("A=1\r\n\r\nA=2\r\n") }
        #expect(crlfTwice?.description == ".env line 3: A is set already on line 1")
        // A carriage return alone (an old Mac file) or another control character in a line: refused, since
        // the first setting would take the rest of the file (a review).
        let bareCR = #expect(throws: DotEnv.ParseError.self) { try DotEnv.parse("A=1\rKMS_MASTER_KEY=x\n") }
        #expect(bareCR?.description.hasPrefix(".env line 1: a control character") == true)
        #expect(try DotEnv.parse("A=\tx\n") == ["A": "x"])
        // A refused value is quoted only when short: it may hold other settings.
        let long = #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_PORT": "4656\nKMS_MASTER_KEY=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"])
        }
        #expect(long.map { !"\($0)".contains("c2Vjcm") } == true, "\(String(describing: long))")
        let short = #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_PORT": "80x"])
        }
        #expect(short.map { "\($0)".contains("'80x'") } == true)
        // An AWS secret access key's length (40) is not short (a review: the limit was 40 bytes).
        let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12"
        let pasted = #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_PORT": secret])
        }
        #expect(pasted.map { !"\($0)".contains(secret) } == true, "\(String(describing: pasted))")
        // Its control characters escaped by the message itself, whatever writes it.
        let controls = #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration(environment: ["KMS_PORT": "80\u{1B}[2J\r"])
        }
        #expect(controls.map { "\($0)".contains("'80\\u{1b}[2J\\u{d}'") } == true, "\(String(describing: controls))")
    }

    /// A `.env` others can write, or read while it holds the master key, is warned about at start (a probe:
    /// neither was).
    @Test func aLooseDotEnvIsWarnedAbout() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("KMS_MASTER_KEY=x\n".utf8).write(to: file)
        let secret = ["KMS_MASTER_KEY": "x"]
        chmod(file.path, 0o666)
        let loose = KMSConfiguration.looseDotEnv(file.path, holding: secret)
        #expect(loose.count == 2 && loose[0].contains("writable by other users") && loose[1].contains("KMS_MASTER_KEY"))
        chmod(file.path, 0o644)
        #expect(KMSConfiguration.looseDotEnv(file.path, holding: secret).count == 1)
        #expect(KMSConfiguration.looseDotEnv(file.path, holding: ["KMS_PORT": "1"]).isEmpty)
        // Group-writable (umask 002) is said apart; a database URL without a password is no secret (the
        // diff review: a socket URL with peer authentication failed kms doctor).
        chmod(file.path, 0o664)
        let group = KMSConfiguration.looseDotEnv(file.path, holding: ["KMS_PORT": "1"])
        #expect(group.count == 1 && group[0].contains("writable by its group"), "\(group)")
        chmod(file.path, 0o644)
        #expect(
            KMSConfiguration.looseDotEnv(file.path, holding: ["KMS_DATABASE_URL": "postgres://kms@/kms?host=/run"])
                .isEmpty)
        #expect(
            KMSConfiguration.looseDotEnv(file.path, holding: ["KMS_DATABASE_URL": "postgres://kms:pw@db/kms"]).count
                == 1)
        chmod(file.path, 0o600)
        #expect(KMSConfiguration.looseDotEnv(file.path, holding: secret).isEmpty)
    }

    @Test func environmentWinsOverDotEnv() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent(".env")
        try "KMS_PORT=4000\nPATH=/nowhere\n".write(to: file, atomically: true, encoding: .utf8)
        let config = try KMSConfiguration.fromProcessEnvironment(dotEnvPath: file.path)
        #expect(config.port == 4000)
        #expect(ProcessInfo.processInfo.environment["PATH"] != "/nowhere")
    }

    /// A `.env` that is there but cannot be read stops the start; only a missing one means "no settings"
    /// (review, 2026-12-03: it was skipped, and the KMS came up on every interface with the default allowlist).
    @Test func aDotEnvThatCannotBeReadStopsTheStart() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-env-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(
            try KMSConfiguration.fromProcessEnvironment(dotEnvPath: folder.appendingPathComponent("none").path).port
                == 3000)
        let notText = folder.appendingPathComponent("latin1.env")
        try Data("# caf\u{E9}\nKMS_HOST=127.0.0.1\n".data(using: .isoLatin1) ?? Data()).write(to: notText)
        #expect(throws: KMSConfiguration.Invalid.self) {
            try KMSConfiguration.fromProcessEnvironment(dotEnvPath: notText.path)
        }
        let aFolder = folder.appendingPathComponent("folder.env")
        try FileManager.default.createDirectory(at: aFolder, withIntermediateDirectories: true)
        // A folder is not a settings file (a Python virtualenv is often named .env): none.
        #expect(try KMSConfiguration.fromProcessEnvironment(dotEnvPath: aFolder.path).port == 3000)
    }

    /// systemd's credential is the master key only while `KMS_MASTER_KEY_FILE` and `KMS_MASTER_KEY` are
    /// unset; set, they win, and the credential they override is named so `kms serve` warns (an operator's
    /// review copied `.env.example`'s path beside the unit's credential and got a new master key).
    @Test func aCredentialOverriddenByTheFileSettingIsNamed() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-cred-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let credential = folder.appendingPathComponent("master.key")
        try Data(repeating: 0x41, count: 44).write(to: credential)
        let used = try KMSConfiguration(environment: ["CREDENTIALS_DIRECTORY": folder.path])
        #expect(used.masterKeyFile.path == credential.path && used.ignoredCredentialKey == nil)
        let file = try KMSConfiguration(environment: [
            "CREDENTIALS_DIRECTORY": folder.path, "KMS_MASTER_KEY_FILE": "./data/master.key",
        ])
        #expect(file.ignoredCredentialKey?.path == credential.path)
        let base64 = try KMSConfiguration(environment: [
            "CREDENTIALS_DIRECTORY": folder.path, "KMS_MASTER_KEY": String(repeating: "A", count: 43) + "=",
        ])
        #expect(base64.ignoredCredentialKey?.path == credential.path)
        let none = try KMSConfiguration(environment: [
            "CREDENTIALS_DIRECTORY": folder.appendingPathComponent("empty").path, "KMS_MASTER_KEY_FILE": "./k",
        ])
        #expect(none.ignoredCredentialKey == nil)
        // Credentials without a master key (a unit passing only a TLS key): the default file.
        let other = try KMSConfiguration(environment: ["CREDENTIALS_DIRECTORY": folder.appendingPathComponent("x").path]
        )
        #expect(other.masterKeyFile.path.hasSuffix("data/master.key") && other.ignoredCredentialKey == nil)
    }

    /// A master key file that `KMS_MASTER_KEY` overrides, and a grace period of 0, are warned about at start
    /// (an operator-mistakes review: neither was); the defaults warn about nothing.
    @Test func settingsSeldomMeantAreWarnedAbout() throws {
        #expect(try KMSConfiguration(environment: [:]).settingWarnings.isEmpty)
        let key = String(repeating: "A", count: 43) + "="
        #expect(try KMSConfiguration(environment: ["KMS_MASTER_KEY": key]).settingWarnings.isEmpty)
        let both = try KMSConfiguration(environment: ["KMS_MASTER_KEY": key, "KMS_MASTER_KEY_FILE": "/etc/kms/m.key"])
        #expect(both.settingWarnings.count == 1 && both.settingWarnings[0].contains("/etc/kms/m.key"))
        let grace = try KMSConfiguration(environment: ["KMS_KEY_GRACE_MS": "0"])
        #expect(grace.settingWarnings.count == 1 && grace.settingWarnings[0].hasPrefix("KMS_KEY_GRACE_MS is 0"))
    }

    /// A credential's 0440 is the mask of systemd's ACL entry, not a loose key: accepted for a file in a
    /// unit's folder under /run/credentials (or in `$CREDENTIALS_DIRECTORY`), with group read only; any
    /// other bit, or the same mode elsewhere, is loose (two reviews).
    @Test func aCredentialsGroupReadIsNotLoose() {
        let credential = URL(fileURLWithPath: "/run/credentials/kms.service/aws.key")
        #expect(!DurableFile.isLooseSecret(mode: 0o440, of: credential))
        #expect(!DurableFile.isLooseSecret(mode: 0o400, of: credential))
        #expect(DurableFile.isLooseSecret(mode: 0o460, of: credential))
        #expect(DurableFile.isLooseSecret(mode: 0o444, of: credential))
        let elsewhere = URL(fileURLWithPath: "/etc/kms/aws.key")
        #expect(DurableFile.isLooseSecret(mode: 0o440, of: elsewhere))
        #expect(!DurableFile.isLooseSecret(mode: 0o600, of: elsewhere))
        #expect(DurableFile.isLooseSecret(mode: 0o440, of: URL(fileURLWithPath: "/run/credentials/aws.key")))
    }

    /// `.env.example` and the README's table document every variable `kms serve --help` lists (a review
    /// found nine missing from the README, whose table nothing checked).
    @Test func envExampleListsEveryVariable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        let example = try String(contentsOf: root.appendingPathComponent(".env.example"), encoding: .utf8)
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        // The table's first column only (a mention elsewhere in the README does not document it).
        let named = readme.split(separator: "\n").filter { $0.hasPrefix("| `") }.map {
            $0.split(separator: "|", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        }
        for variable in ConfigVariable.all {
            #expect(example.contains("\(variable.name)="), "\(variable.name) missing from .env.example")
            #expect(
                named.contains { $0.contains("`\(variable.name)`") }, "\(variable.name) missing from the README's table"
            )
        }
        #expect(ConfigVariable.helpText.contains("KMS_WHITELIST"))
    }
}

/// lifecycle-v1 rule 9.1: the test clock offset moves every clock reading,
/// and is refused in production.
@Suite struct TestClockOffsetTests {
    @Test func refusedInProductionAndAppliedToSessions() async throws {
        #expect(throws: KMSConfiguration.Invalid.self) {
            _ = try KMSConfiguration(environment: ["KMS_ENV": "production", "KMS_TEST_CLOCK_OFFSET_MS": "1"])
        }
        // Back in time too: the range is signed, so a minus is read (a review: digits only refused it).
        #expect(
            try KMSConfiguration(environment: ["KMS_TEST_CLOCK_OFFSET_MS": "-86400000"]).testClockOffsetMs
                == -86_400_000)
        let week: Int64 = 7 * 86_400_000
        let server = try TestServer(["KMS_TEST_CLOCK_OFFSET_MS": "\(week)"])
        let now = server.clock.now()
        try await server.run { client in
            let session = WireSession(client: client)
            let confirmation = try await session.establish()
            let expires = try #require(Timestamp.parse(confirmation.expiresAt))
            let expected = now.addingTimeInterval(Double(week + 900_000) / 1000)
            #expect(abs(expires.timeIntervalSince(expected)) < 5, "\(confirmation.expiresAt)")
        }
    }
}

@Suite struct DatabaseURLLoggingTests {
    /// The logged configuration shows neither the password nor the value of a
    /// parameter start-up will refuse.
    @Test func secretsInTheURLAreRedacted() throws {
        let config = try KMSConfiguration(environment: [
            "KMS_STORE": "postgres",
            "KMS_DATABASE_URL": "postgres://kms:hunter2@db:5432/kms?sslmode=verify-full&password=hunter3",
        ])
        let logged = "\(config.loggable["database"] ?? "")"
        #expect(!logged.contains("hunter2") && !logged.contains("hunter3") && logged.contains("sslmode=verify-full"))
        // libpq's key=value form, and a fragment: shown as nothing of theirs (a probe found the first logged
        // whole, password included, and the second kept).
        for url in [
            "host=db port=5432 user=kms password=hunter4 dbname=kms", "postgres://kms@db/kms#hunter5",
            // A password's raw `@`, `?` or `#` (a review: its rest was shown as the host and path).
            "postgres://kms:Xy@zhunter6/9Q@db/kms", "postgres://kms:12?hunter7@db/kms",
            "postgres://kms:ab#hunter8@db/kms",
        ] {
            let other = try KMSConfiguration(environment: ["KMS_DATABASE_URL": url])
            let shown = "\(other.loggable["database"] ?? "")"
            #expect(!shown.contains("hunter"), "\(shown)")
        }
    }
}
