import ArgumentParser
import Foundation
import KMSClient

/// `kms known-servers list|forget`: the server keys this machine remembers
/// (trust on first use, `KnownServers`).
struct KnownServersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "known-servers",
        abstract: "List or forget the server keys this machine remembers (KMS_KNOWN_SERVERS).",
        subcommands: [List.self, Forget.self], defaultSubcommand: List.self)

    /// The file, and the entries it holds; a setting or a file that cannot be
    /// used is exit status 64, as it is for every client verb.
    static func store() throws -> (KnownServers, [KnownServers.Entry]) {
        do {
            guard let known = try KnownServers.fromEnvironment(ProcessInfo.processInfo.environment) else {
                throw ValidationError("KMS_KNOWN_SERVERS is off: no server keys are remembered")
            }
            return (known, try known.entries())
        } catch let failure as CLIFailure {
            throw ValidationError(failure.message)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print each remembered server and its key.")
        @Flag(name: .long, help: "Print JSON for scripts instead of readable text.") var json = false

        func run() throws {
            let (known, entries) = try KnownServersCommand.store()
            if json { return try printJSON(entries) }
            guard !entries.isEmpty else { return printShown("no server keys remembered in \(known.file.path)") }
            for entry in entries { printShown("\(entry.url)  \(entry.fingerprint)  first seen \(entry.firstSeen)") }
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a server's key, after checking its new one with `kms server-key` on the server.")
        @Argument(help: "The server's URL, as KMS_URL or --url gives it.") var url: String

        func run() throws {
            guard let origin = KnownServers.origin(of: url) else {
                throw ValidationError(
                    "\(KMSClientConfiguration.redacted(url)) is not an http:// or https:// URL with a host")
            }
            let (known, _) = try KnownServersCommand.store()
            guard try known.forget(origin) else {
                throw CLIFailure(message: "\(origin) is not remembered in \(known.file.path)")
            }
            printShown("forgot \(origin): the next command to it remembers the key it answers with")
        }
    }
}
