import ArgumentParser
import Foundation
import KMSClient
import KMSProtocol

/// `kms keys generate|rotate|show|list`
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Generate, rotate, show and list managed keys.",
        subcommands: [Generate.self, Rotate.self, Show.self, List.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a new AES-256 key (version 1).")
        @OptionGroup var client: ClientOptions
        @Option(help: "A unique name for the key, [A-Za-z0-9][A-Za-z0-9._-]{0,63}.") var alias: String?

        func run() async throws {
            let created = try await withClient(client) { try await $0.generateKey(alias: alias) }
            if client.json { return try printJSON(created) }
            print("created \(created.keyId)\(alias.map { " (\($0))" } ?? "") version \(created.version)")
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new active version; the old one decrypts until its grace period ends.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws {
            let rotated = try await withClient(client) { try await $0.rotateKey(key) }
            if client.json { return try printJSON(rotated) }
            print("rotated \(rotated.keyId): version \(rotated.version) is active")
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
                print("\(key.keyId)  v\(key.activeVersion)  \(key.alias ?? "-")  created \(key.createdAt)")
            }
            if let next = page.next { print("more: kms keys list --after \(next)") }
        }
    }
}

func printMetadata(_ metadata: KeyMetadata) {
    print("key \(metadata.keyId)\(metadata.alias.map { " (\($0))" } ?? "")  created \(metadata.createdAt)")
    for version in metadata.versions {
        let grace = version.graceUntil.map { "  grace until \($0)" } ?? ""
        print("  v\(version.version)  \(version.status)  created \(version.createdAt)\(grace)")
    }
}
