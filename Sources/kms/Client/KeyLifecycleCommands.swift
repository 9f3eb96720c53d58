import ArgumentParser
import Foundation
import KMSClient
import KMSProtocol

// `kms keys disable|enable|schedule-deletion|cancel-deletion|rotation|describe|tag`
// and `kms aliases list|create|move|delete` (lifecycle-v1).

extension KeysCommand {
    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a key: it refuses encrypt, decrypt, rewrap, data keys and rotation until enabled.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws { try await show(client) { try await $0.disableKey(key) } }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a disabled key work again.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws { try await show(client) { try await $0.enableKey(key) } }
    }

    struct ScheduleDeletion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "schedule-deletion",
            abstract: "Delete a key for good after a waiting window (cancel-deletion undoes it until then).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Days to wait, 7 to 30.") var days = 30
        @Argument(help: "Key id or alias.") var key: String

        /// Checked here, so the message names the flag (the server's names `pendingWindowDays`: a newcomer's
        /// walkthrough), with the server's own range.
        func validate() throws {
            try checkRange("--days", days, ScheduleDeletionRequest.range)
        }

        func run() async throws { try await show(client) { try await $0.scheduleKeyDeletion(key, days: days) } }
    }

    struct CancelDeletion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cancel-deletion", abstract: "Keep a key scheduled for deletion; it comes back disabled.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws { try await show(client) { try await $0.cancelKeyDeletion(key) } }
    }

    struct Rotation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate a key automatically (--every 90d) or stop doing so (--off).")
        @OptionGroup var client: ClientOptions
        @Option(help: "The period: a number of days, written 90d or 90 (1 to 3650).") var every: String?
        @Flag(help: "Stop automatic rotation.") var off = false
        @Argument(help: "Key id or alias.") var key: String

        func validate() throws {
            guard (every != nil) != off else { throw ValidationError("give exactly one of --every and --off") }
            if let every, Self.days(every) == nil { throw ValidationError("--every takes days, such as 90d") }
        }

        static func days(_ text: String) -> Int? {
            let number = text.hasSuffix("d") ? String(text.dropLast()) : text
            return number.isDecimalDigits ? Int(number).flatMap { (1...3650).contains($0) ? $0 : nil } : nil
        }

        func run() async throws {
            let days = every.flatMap(Self.days)
            try await show(client) { try await $0.setRotation(key, periodDays: days) }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set what a key is for.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Key id or alias.") var key: String
        @Argument(help: "The description (at most 8,192 bytes; empty clears it).") var description: String

        func run() async throws { try await show(client) { try await $0.describeKey(key, description: description) } }
    }

    struct Tag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set or remove tags of a key.")
        @OptionGroup var client: ClientOptions
        @Option(name: .customLong("set"), help: "key=value (repeatable).") var set: [String] = []
        @Option(name: .customLong("remove"), help: "A tag key to remove (repeatable).") var remove: [String] = []
        @Argument(help: "Key id or alias.") var key: String

        func run() async throws {
            let tags = try parseTags(set)
            try await show(client) { try await $0.tagKey(key, set: tags, remove: remove) }
        }
    }
}

/// Runs a lifecycle call and prints the key's metadata it answers.
private func show(_ client: ClientOptions, _ body: (KMSClient) async throws -> KeyMetadata)
    async throws
{
    let metadata = try await withClient(client, body)
    if client.json { return try printJSON(metadata) }
    printMetadata(metadata)
}

/// `key=value` pairs; the value may contain `=`.
func parseTags(_ pairs: [String]) throws -> [String: String] {
    var tags: [String: String] = [:]
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("a tag is key=value, got '\(pair)'") }
        let key = String(pair[..<equals])
        // Two keys that read the same but are other bytes (`K` and U+212A) would merge here, as the server
        // refuses to merge them.
        guard tags.keyReadingSame(as: key) == nil else {
            throw ValidationError("two tag keys read the same but are written differently; give one of them")
        }
        tags[key] = String(pair[pair.index(after: equals)...])
    }
    return tags
}

/// `kms aliases list|create|move|delete`
struct AliasesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aliases", abstract: "List, create, move and delete key aliases.",
        subcommands: [List.self, Create.self, Move.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List aliases, sorted by name.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Aliases per page, 1 to 1000.") var limit = 100
        @Option(help: "Start after this alias (the previous page's `next`).") var after: String?
        @Option(help: "Only this key's aliases (id or alias).") var key: String?

        func run() async throws {
            let page = try await withClient(client) { try await $0.listAliases(limit: limit, after: after, key: key) }
            if client.json { return try printJSON(page) }
            for alias in page.aliases { printShown("\(alias.alias)  \(alias.keyId)  updated \(alias.updatedAt)") }
            // The next page of the same listing: with `--key` (a probe followed the hint to every key's aliases).
            if let next = page.next {
                printShown(
                    "more: kms aliases list --after \(next)" + (key.map { " --key \($0)" } ?? "")
                        + (limit == 100 ? "" : " --limit \(limit)"))
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a key one more name.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The new alias.") var alias: String
        @Argument(help: "Key id or alias of the key it names.") var key: String

        func run() async throws {
            let created = try await withClient(client) { try await $0.createAlias(alias, key: key) }
            if client.json { return try printJSON(created) }
            printShown("\(created.alias) → \(created.keyId)")
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point an alias at another key.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The alias.") var alias: String
        @Argument(help: "Key id or alias of the key it should name.") var key: String

        func run() async throws {
            let moved = try await withClient(client) { try await $0.moveAlias(alias, to: key) }
            if client.json { return try printJSON(moved) }
            printShown("\(moved.alias) → \(moved.keyId)")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an alias (the key stays).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The alias.") var alias: String

        func run() async throws {
            try await withClient(client) { try await $0.deleteAlias(alias) }
            if client.json { return printJSONText("{}") }
            printShown("deleted alias \(alias)")
        }
    }
}
