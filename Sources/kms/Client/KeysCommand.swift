import ArgumentParser
import Foundation
import KMSClient
import KMSCore
import KMSProtocol

/// `kms keys generate|rotate|show|list`, and the lifecycle verbs
/// (`KeyLifecycleCommands.swift`).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Generate, rotate, show, list and manage the lifecycle of keys.",
        subcommands: [
            Generate.self, Rotate.self, Show.self, List.self, Disable.self, Enable.self, ScheduleDeletion.self,
            CancelDeletion.self, Rotation.self, Describe.self, Tag.self,
        ])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a new AES-256 key (version 1).")
        @OptionGroup var client: ClientOptions
        @Option(help: "A unique name for the key, [A-Za-z0-9][A-Za-z0-9._-]{0,63}.") var alias: String?
        @Option(help: "What the key is for (at most 8,192 bytes).") var description: String?
        @Option(name: .customLong("tag"), help: "A tag, key=value (repeatable).") var tags: [String] = []

        func run() async throws {
            let tags = try parseTags(self.tags)
            let created = try await withClient(client) {
                try await $0.generateKey(alias: alias, description: description, tags: tags.isEmpty ? nil : tags)
            }
            if client.json { return try printJSON(created) }
            printShown("created \(created.keyId)\(alias.map { " (\($0))" } ?? "") version \(created.version)")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new active version; the old one decrypts until its grace period ends.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws {
            let json = client.json
            let (rotated, metadata) = try await withClient(client) { kms -> (KeyVersionResponse, KeyMetadata?) in
                let rotated = try await kms.rotateKey(key)
                // The old versions' deadlines: what the operator must act by (an operator's walkthrough: the
                // rotation said nothing of them). Best effort, the rotation being done whatever this answers,
                // and asked only of a client whose grants let it read the key: a refused read is audited as
                // `permission.denied` (a review: every rotation by a rotate-only client logged one).
                guard !json, await Self.mayRead(rotated.keyId, named: key, kms) else { return (rotated, nil) }
                return (rotated, try? await kms.key(rotated.keyId))
            }
            if json { return try printJSON(rotated) }
            printShown("rotated \(rotated.keyId): version \(rotated.version) is active")
            let versions: [KeyMetadata.Version] = metadata?.versions ?? []
            let inGrace = versions.filter { $0.status == "grace" && $0.graceUntil != nil }
            for version in inGrace {
                printShown(
                    "  version \(version.version) decrypts until \(version.graceUntil ?? "?") (its grace period)")
            }
            if !inGrace.isEmpty {
                printShown(
                    "  `kms rewrap` (a ciphertext) or `kms rewrap-file` (a file) moves it to version \(rotated.version) before then"
                )
            }
        }

        /// Whether this session's grants allow `keys:read` on the key by its id or by the name given: all a
        /// client can judge, so a grant naming only another alias of the key is missed (no line then, and
        /// no refusal). With client identity off a session may do everything.
        static func mayRead(_ keyId: String, named name: String, _ kms: KMSClient) async -> Bool {
            guard let session = try? await kms.whoami() else { return false }
            guard let client = session.client else { return true }
            guard let grants = try? KMSCore.Grant.validate(client.grants) else { return false }
            let names = KeyAccess.Names(keyId: keyId, aliases: name == keyId ? [] : [name])
            return names.allowed(.keysRead, by: grants)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a key's versions and their status.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws {
            let metadata = try await withClient(client) { try await $0.key(key) }
            if client.json { return try printJSON(metadata) }
            printMetadata(metadata)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys, sorted by id.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Keys per page, 1 to 1000.") var limit = 100
        @Option(help: "Start after this key id (the previous page's `next`).") var after: String?

        func run() async throws {
            let page = try await withClient(client) { try await $0.listKeys(limit: limit, after: after) }
            if client.json { return try printJSON(page) }
            for key in page.keys {
                let aliases = key.aliases.isEmpty ? "-" : key.aliases.joined(separator: ",")
                printShown("\(key.keyId)  v\(key.activeVersion)  \(key.state)  \(aliases)  created \(key.createdAt)")
            }
            // The next page of the same listing, its page size too (a newcomer's walk: `--limit` was dropped).
            if let next = page.next {
                printShown("more: kms keys list --after \(next)" + (limit == 100 ? "" : " --limit \(limit)"))
            }
        }
    }
}

func printMetadata(_ metadata: KeyMetadata) {
    printShown("key \(metadata.keyId)  created \(metadata.createdAt)")
    printShown("  state      \(metadata.state)\(metadata.deletionDate.map { "  (deleted for good at \($0))" } ?? "")")
    printShown("  aliases    \(metadata.aliases.isEmpty ? "-" : metadata.aliases.joined(separator: ", "))")
    let rotation = metadata.rotationPeriodDays.map {
        "every \($0 == 1 ? "day" : "\($0) days"), next \(metadata.nextRotationAt ?? "?")"
    }
    printShown("  rotation   \(rotation ?? "manual")")
    // Written by any client with keys:manage: escaped, so it cannot forge lines or drive the terminal (a review).
    if !metadata.description.isEmpty { printShown("  describes  \(metadata.description)") }
    for (key, value) in metadata.tags.sorted(by: { $0.key < $1.key }) {
        printShown("  tag        \(key)=\(value)")
    }
    for version in metadata.versions {
        let grace = version.graceUntil.map { "  grace until \($0)" } ?? ""
        printShown("  v\(version.version)  \(version.status)  created \(version.createdAt)\(grace)")
    }
}
