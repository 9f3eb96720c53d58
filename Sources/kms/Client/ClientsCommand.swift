import ArgumentParser
import Crypto
import Foundation
import KMSClient
import KMSCore
import KMSPostgres
import KMSProtocol
import KMSServer
import Logging

/// `kms client-key init|show`: this device's Ed25519 key (identity-v1 section 6).
struct ClientKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-key", abstract: "Create or show this device's Ed25519 client key.",
        subcommands: [Init.self, Show.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new key file (mode 0600, never over an existing one) and print what to enrol.")
        @Option(help: "Key file (default: KMS_CLIENT_KEY_FILE, else ~/.config/kms/client.key).") var file: String?
        @Flag(name: .long, help: "Print JSON for scripts instead of readable text.") var json = false

        func run() async throws {
            let path =
                file ?? ProcessInfo.processInfo.environment["KMS_CLIENT_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 }
                ?? ClientKeyLookup.defaultPath
            let url = URL(fileURLWithPath: path)
            let key = Curve25519.Signing.PrivateKey()
            do {
                try DurableFile.prepareFolder(url.deletingLastPathComponent())
                guard try DurableFile.createExclusive(Data(ClientKeyFile.pem(key).utf8), at: url) else {
                    throw CLIFailure(message: "\(path) exists; a key file is never overwritten")
                }
            } catch let failure as DurableFile.Failure {
                throw CLIFailure(message: failure.description)
            }
            try printKey(key, path: path, json: json)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public key and fingerprint of the key in use.")
        @Flag(name: .long, help: "Print JSON for scripts instead of readable text.") var json = false

        func run() async throws {
            guard let found = try ClientKeyLookup.find() else {
                throw CLIFailure(message: "no client key: \(ClientKeyLookup.searched()); run `kms client-key init`")
            }
            try printKey(found.key, path: found.path, json: json)
        }
    }
}

/// What `client-key init` and `show` print: the public half only.
private struct ClientKeyReport: Encodable {
    let keyFile: String
    let publicKey: String
    let fingerprint: String
}

private func printKey(_ key: Curve25519.Signing.PrivateKey, path: String, json: Bool) throws {
    let raw = key.publicKey.rawRepresentation
    if json {
        return try printJSON(
            ClientKeyReport(
                keyFile: path, publicKey: Base64.encode(raw), fingerprint: ClientAuth.fingerprint(rawPublicKey: raw)))
    }
    printShown("key file    \(path)")
    printShown("publicKey   \(Base64.encode(raw))")
    printShown("fingerprint \(ClientAuth.fingerprint(rawPublicKey: raw))")
    printShown(
        "enrol it:   kms clients add NAME --public-key \(Base64.encode(raw)) --allow crypto:encrypt,crypto:decrypt,crypto:datakey,keys:read --keys 'photos*'"
    )
}

/// `kms whoami`: this session's client and grants.
struct WhoamiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Show the client this device authenticates as, and its grants.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let info = try await withClient(client) { try await $0.whoami() }
        if client.json { return try printJSON(info) }
        guard let me = info.client else {
            printShown("session \(info.sessionId): the server has client identity off (KMS_CLIENT_AUTH=off)")
            return
        }
        printShown("\(me.name)  \(me.clientId)  \(me.fingerprint)")
        printGrants(me.grants)
    }
}

/// `kms clients add|list|show|grant|revoke|access-key` (needs `clients:manage`).
struct ClientsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients", abstract: "Enrol, list, show, re-grant and revoke client devices.",
        subcommands: [Add.self, List.self, Show.self, Grant.self, Revoke.self, AccessKey.self])

    /// One grant from `--allow` and `--keys`, or the full list as `--grants` JSON.
    struct GrantOptions: ParsableArguments {
        @Option(help: "Permissions, comma-separated (keys:create, keys:read, crypto:encrypt, …).") var allow: String?
        @Option(
            help:
                "Key patterns, comma-separated: *, a keyId, an alias, or an alias start followed by *. Required with --allow."
        )
        var keys: String?
        @Option(help: "Every grant as JSON: [{\"keys\":[…],\"allow\":[…]}] (instead of --allow/--keys).")
        var grants: String?

        /// No default key pattern: a grant names its keys, or an admin who
        /// meant to narrow a client to one permission would open it to every key.
        func bodies() throws -> [GrantBody] {
            if grants != nil, allow != nil || keys != nil {
                throw ValidationError("give --grants or --allow with --keys, not both")
            }
            if (allow == nil) != (keys == nil) {
                throw ValidationError(
                    "--allow and --keys go together: name the keys (--keys '*' for every key) and the permissions")
            }
            if let grants {
                guard let value = try? JSONParser.parse(Data(grants.utf8)) else {
                    throw ValidationError("--grants is not JSON")
                }
                do {
                    return try GrantBody.parseList(value)
                } catch {
                    throw ValidationError("--grants: \(error.field ?? "grants"): \(error.message)")
                }
            }
            guard let allow, let keys else { return [] }
            let split = { (text: String) in text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            return [GrantBody(keys: split(keys), allow: split(allow))]
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol a device's public key (from `kms client-key init` on it).",
            discussion:
                "--local enrols directly in the store on the server host, with the server stopped: the way back in when no admin key is left."
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "Name: [a-z0-9][a-z0-9._-]{0,62}.") var name: String
        @Option(name: .customLong("public-key"), help: "The device's public key, base64 of 32 bytes.") var publicKey:
            String
        @OptionGroup var grantOptions: GrantOptions
        @Flag(help: "Write to the store directly (server host, server stopped); audited with via: local.")
        var local = false

        func run() async throws {
            if ClientKeyFile.looksPrivate(publicKey) { throw ValidationError("--public-key: \(privateKeyAdvice)") }
            guard let raw = Base64.decodeStrict(publicKey), raw.count == 32 else {
                throw ValidationError("--public-key must be the base64 of a 32-byte Ed25519 public key")
            }
            let grants = try grantOptions.bodies()
            if local {
                // The server's checks: shape (limits, empty lists, duplicates), grammar, name, key.
                let validated: [KMSCore.Grant]
                do throws(RequestFieldError) {
                    validated = try KMSCore.Grant.validate(GrantBody.parseList(.array(grants.map(\.json))))
                } catch {
                    throw ValidationError("\(error.field ?? "grants"): \(error.message)")
                }
                guard ClientRecord.isValidName(name), ClientAuth.isEnrollablePublicKey(raw) else {
                    throw ValidationError("invalid name or public key")
                }
                let fields = KMSCore.Grant.addAuditFields(name: name, publicKey: raw, grants: validated)
                let added = try await LocalRegistry.open(intent: fields) { registry in
                    try await registry.add(name: name, publicKey: raw, grants: validated).body
                }
                return try show(added)
            }
            try show(
                try await withClient(client) { try await $0.addClient(name: name, publicKey: raw, grants: grants) })
        }

        func show(_ record: ClientBody) throws {
            if client.json { return try printJSON(record) }
            printClient(record)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients, revoked ones included.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Clients per page, 1 to 1000.") var limit = 100
        @Option(help: "Start after this clientId (the previous page's `next`).") var after: String?

        func run() async throws {
            let page = try await withClient(client) { try await $0.listClients(limit: limit, after: after) }
            if client.json { return try printJSON(page) }
            for record in page.clients {
                let state = record.revokedAt.map { "revoked \($0)" } ?? "active"
                printShown("\(record.clientId)  \(record.name)  \(state)  \(record.grants.count) grant(s)")
            }
            if let next = page.next { printShown("more: --after \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a client: key, grants, access keys.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "clientId or name.") var target: String

        func run() async throws {
            let target = self.target
            let record = try await withClient(client) { kms in
                do {
                    return try await kms.client(target)
                } catch let error as KMSClientError
                    where error.code == ErrorCode.clientNotFound.rawValue && ClientRecord.isValidName(target)
                {
                    // A name names active clients only (identity-v1: a revoked client's name may be reused), so
                    // a revoked device was shown by its clientId alone, which an operator after an incident
                    // seldom has (an operator's walkthrough). The listing has it; a listing that fails leaves
                    // the server's answer as it was.
                    guard let revoked = try? await Self.revoked(named: target, kms), let first = revoked.first else {
                        throw error
                    }
                    let named = revoked.map { "\($0.clientId) (revoked \($0.revokedAt ?? "?"))" }
                    throw CLIFailure(
                        message: error.adding(
                            "; no active client has that name, and the revoked ones that had it are \(named.joined(separator: ", ")): kms clients show \(first.clientId)"
                        ).description)
                }
            }
            if client.json { return try printJSON(record) }
            printClient(record)
        }

        /// The revoked clients named `name`, from the whole listing (at most 10,000 records, the registry's
        /// limit), in pages of 200: a page of 1,000 records with many grants could pass the 4 MiB a client
        /// reads of one answer (a review).
        static func revoked(named name: String, _ kms: KMSClient) async throws -> [ClientBody] {
            var found: [ClientBody] = []
            var after: String?
            for _ in 0..<50 {
                let page = try await kms.listClients(limit: 200, after: after)
                found += page.clients.filter { $0.name == name && $0.revokedAt != nil }
                guard let next = page.next else { break }
                after = next
            }
            return found
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replace a client's grants.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "clientId or name.") var target: String
        @OptionGroup var grantOptions: GrantOptions

        func run() async throws {
            guard grantOptions.grants != nil || grantOptions.allow != nil else {
                throw ValidationError("give --allow with --keys, or --grants (--grants '[]' removes every grant)")
            }
            let grants = try grantOptions.bodies()
            let record = try await withClient(client) { try await $0.setGrants(target, grants) }
            if client.json { return try printJSON(record) }
            printClient(record)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a client for good: its sessions end at once, its access keys stop.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "clientId or name.") var target: String

        func run() async throws {
            let record = try await withClient(client) { try await $0.revokeClient(target) }
            if client.json { return try printJSON(record) }
            printShown("revoked \(record.name) (\(record.clientId)) at \(record.revokedAt ?? "?")")
        }
    }

    struct AccessKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "access-key", abstract: "Access keys for the SigV4 (AWS-compatible) front door.",
            subcommands: [Create.self, Revoke.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create one; the secret is shown this once.")
            @OptionGroup var client: ClientOptions
            @Argument(help: "clientId or name.") var target: String

            func run() async throws {
                let created = try await withClient(client) { try await $0.createAccessKey(target) }
                if client.json { return try printJSON(created) }
                printShown("accessKeyId     \(created.accessKeyId)")
                printShown("secretAccessKey \(created.secretAccessKey)   (shown once: store it now)")
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Revoke one; it stops working at once.")
            @OptionGroup var client: ClientOptions
            @Argument(help: "clientId or name.") var target: String
            @Argument(help: "The access key id (AKIA…).") var accessKeyId: String

            /// Checked before anything is sent: `create` prints the secret beside the id, and a secret
            /// given here went to the server, into its request log, and was not echoed back (a review).
            func validate() throws {
                guard AccessKeyRecord.isAccessKeyId(accessKeyId) else {
                    throw ValidationError(
                        "that is not an access key id (AKIA and 16 of A-Z2-7); not shown, in case it is the secret")
                }
            }

            func run() async throws {
                let record = try await withClient(client) {
                    try await $0.revokeAccessKey(target, accessKeyId: accessKeyId)
                }
                if client.json { return try printJSON(record) }
                printShown("revoked \(accessKeyId) of \(record.name)")
            }
        }
    }
}

private func printClient(_ record: ClientBody) {
    printShown("\(record.name)  \(record.clientId)  \(record.revokedAt.map { "revoked \($0)" } ?? "active")")
    printShown("  fingerprint \(record.fingerprint)")
    printShown("  publicKey   \(record.publicKey)")
    printGrants(record.grants)
    for key in record.accessKeys {
        printShown("  access key  \(key.accessKeyId)  \(key.revokedAt.map { "revoked \($0)" } ?? "active")")
    }
}

private func printGrants(_ grants: [GrantBody]) {
    if grants.isEmpty { printShown("  no grants: a session, random bytes and an empty key list") }
    for grant in grants {
        printShown("  allow \(grant.allow.joined(separator: ",")) on \(grant.keys.joined(separator: ","))")
    }
}

/// The registry of the configured store, opened on the server host without
/// the server (`--local`): the recovery path when no admin key is left. Each
/// change is appended to the server's audit log with `via: local`, as the
/// server would write it (a durable intent, then the outcome).
enum LocalRegistry {
    static func open(intent: [(String, String)], _ body: (ClientRegistry) async throws -> ClientBody) async throws
        -> ClientBody
    {
        let config = try KMSConfiguration.forCommand()
        var logger = Logger(label: "kms")
        logger.logLevel = .warning
        // Before the locks, which would make the folders of a store that was never there (the master key
        // may come from the environment, so the store's folder is checked too).
        let masterKey = try config.existingMasterKey(logger: logger)
        if config.store == .file, !FileManager.default.fileExists(atPath: config.keyStorePath.path) {
            throw ValidationError(
                "no key store at \(config.keyStorePath.path) (KEY_STORE_PATH): run this where `kms serve` runs, with its configuration"
            )
        }
        // Refused while a server writes the same audit log (and store), before anything is touched.
        let writerLock = try AuditWriterLock.acquire(forLog: config.auditLog)
        let storeLock = config.store == .file ? try AuditWriterLock.acquire(forStore: config.keyStorePath) : nil
        defer { withExtendedLifetime((writerLock, storeLock)) {} }
        if storeLock != nil, let refusal = FileBackupStore.interruptedRestoreRefusal(in: config.keyStorePath) {
            // The store is not what its backup held (as kms serve refuses it): no enrolment into it.
            throw CLIFailure(message: refusal)
        }
        switch config.store {
        case .file:
            let store = try LocalClientStore(folder: config.keyStorePath)
            let secrets = FileSecretBlobStore(folder: config.keyStorePath)
            return try await audited(config, secrets: secrets, masterKey: masterKey, logger: logger, intent: intent) {
                try await body(ClientRegistry(store: store, masterKey: masterKey, clock: SystemClock()))
            }
        case .postgres:
            let database = try await PostgresDatabase(
                url: config.databaseURL ?? "", prefix: config.databasePrefix, logger: logger,
                callTimeout: config.databaseCallTimeout)
            defer { database.shutdown() }
            return try await audited(
                config, secrets: PostgresSecretBlobStore(database: database), masterKey: masterKey, logger: logger,
                intent: intent
            ) {
                try await body(
                    ClientRegistry(
                        store: PostgresClientStore(database: database), masterKey: masterKey, clock: SystemClock()))
            }
        }
    }

    /// Runs `change` between a durable `client.add` intent and its outcome in `KMS_AUDIT_LOG`.
    private static func audited(
        _ config: KMSConfiguration, secrets: some SecretBlobStore, masterKey: MasterKey, logger: Logger,
        intent: [(String, String)], _ change: () async throws -> ClientBody
    ) async throws -> ClientBody {
        let (key, keyExisted) = try await AuditFiles.loadOrCreateKeyNotingAge(
            store: secrets, masterKey: masterKey, log: config.auditLog)
        let log = try await LocalAudit.open(config, key: key, keyExisted: keyExisted, logger: logger)
        return try await LocalAudit.around(log, "client.add", intent, result: { [("targetClientId", $0.clientId)] }) {
            try await change()
        }
    }
}
