import ArgumentParser
import Foundation
import KMSClient
import KMSProtocol

/// `kms encrypt`
struct EncryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt", abstract: "Encrypt up to 64 KiB under a key's active version; prints the ciphertext.")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "Key id or alias.") var key: String
    @OptionGroup var input: DataInput
    @OptionGroup var aad: AADOptions
    @Flag(
        name: .customLong("allow-empty"),
        help: "Encrypt empty input from standard input or --file (refused without it: a failed pipe gives none).")
    var allowEmpty = false

    func run() async throws {
        if input.literal != nil {
            // An argument is in every process listing (`/proc/PID/cmdline`) while the command runs, and in
            // the shell's history after: said once, not refused, as a quick test is a fair use of it.
            writeToStandardError(
                "note: a plaintext given as an argument is visible to other users of this machine while the command runs (ps) and stays in your shell's history: give it on standard input or with --file\n"
            )
        }
        let typed =
            input.literal == nil && (input.file ?? "-") == "-" && !input.base64
            ? try TerminalPrompt.readHidden("plaintext (not shown; Enter ends it): ", limit: 65_536) : nil
        let plaintext = try typed ?? input.read()
        // Nothing from a pipe or a file is more often a failure upstream (`cat missing | kms encrypt`, cron's
        // empty standard input) than the empty string meant: refused, as the result would look like success
        // (a newcomer's walkthrough). An empty argument or an empty line typed at the prompt is meant.
        if plaintext.isEmpty, typed == nil, input.literal == nil, !allowEmpty {
            throw ValidationError(
                "nothing to encrypt: \(input.source) \(input.base64 ? "decoded to no bytes" : "was empty"); pass --allow-empty to encrypt the empty string"
            )
        }
        let aadData = try aad.read()
        let sealed = try await withClient(client) { try await $0.encrypt(key: key, plaintext: plaintext, aad: aadData) }
        if client.json { return try printJSON(sealed) }
        printShown(sealed.ciphertext)
    }
}

/// `kms decrypt`
struct DecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt", abstract: "Decrypt a ciphertext (kms:v1:…); prints the plaintext.")
    @OptionGroup var client: ClientOptions
    @OptionGroup var input: DataInput
    @OptionGroup var aad: AADOptions
    @Flag(name: .customLong("output-base64"), help: "Print the plaintext as base64 instead of raw bytes.")
    var outputBase64 = false

    func run() async throws {
        let ciphertext = try input.readCiphertext()
        let aadData = try aad.read()
        let opened = try await withClient(client) { try await $0.decrypt(ciphertext: ciphertext, aad: aadData) }
        if client.json { return try printJSON(opened) }
        if outputBase64 {
            printShown(opened.plaintext.base64EncodedString())
        } else {
            // Anyone who may encrypt under the key chose these bytes: on a terminal, control characters
            // would act (retitle, clear, forge lines: a review finding), so they are not written there.
            if isatty(STDOUT_FILENO) == 1, !Self.isPlainText(opened.plaintext) {
                throw CLIFailure(
                    message:
                        "the plaintext holds control characters or bytes that are not UTF-8, which a terminal would act on: add --output-base64, or send standard output to a file or a pipe"
                )
            }
            try writeToStandardOutput(opened.plaintext)
        }
    }
}

extension DecryptCommand {
    /// UTF-8 whose only control characters are tabs and line ends (a CR only before an LF: alone it
    /// moves back over what was printed), and with no invisible format characters (bidirectional
    /// overrides, zero-width spaces, tags, a byte-order mark) or Unicode line separators, which make
    /// text read as other text.
    static func isPlainText(_ data: Data) -> Bool {
        guard let text = String(validating: data, as: UTF8.self) else { return false }
        let scalars = Array(text.unicodeScalars)
        if scalars.contains(where: TerminalText.isInvisible) { return false }
        for (index, scalar) in scalars.enumerated() where TerminalText.isControl(scalar) {
            switch scalar {
            case "\t", "\n": continue
            case "\r" where index + 1 < scalars.count && scalars[index + 1] == "\n": continue
            default: return false
            }
        }
        return true
    }
}

/// `kms rewrap`
struct RewrapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rewrap",
        abstract: "Re-encrypt a ciphertext under the key's active version (plaintext stays on the server).")
    @OptionGroup var client: ClientOptions
    @OptionGroup var input: DataInput
    @OptionGroup var aad: AADOptions

    func run() async throws {
        let ciphertext = try input.readCiphertext()
        let aadData = try aad.read()
        let rewrapped = try await withClient(client) { try await $0.rewrap(ciphertext: ciphertext, aad: aadData) }
        if client.json { return try printJSON(rewrapped) }
        printShown(rewrapped.ciphertext)
    }
}

/// `kms datakey`
struct DataKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datakey",
        abstract: "Make a data key for envelope encryption: the key (base64) and its ciphertext under a managed key.")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "Key id or alias.") var key: String
    @Option(name: .long, help: "Data key size in bytes, 16 to 64.") var bytes = 32
    @OptionGroup var aad: AADOptions

    func validate() throws { try checkRange("--bytes", bytes, CryptoLimits.dataKeyBytes) }

    func run() async throws {
        let aadData = try aad.read()
        let dataKey = try await withClient(client) { try await $0.dataKey(key: key, bytes: bytes, aad: aadData) }
        if client.json { return try printJSON(dataKey) }
        printShown("plaintext:  \(dataKey.plaintext.base64EncodedString())")
        printShown("ciphertext: \(dataKey.ciphertext)")
    }
}

/// `kms random`
struct RandomCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random", abstract: "Random bytes from the server's CSPRNG, as base64.")
    @OptionGroup var client: ClientOptions
    @Option(name: .long, help: "How many bytes, 1 to 1024.") var bytes = 32

    func validate() throws { try checkRange("--bytes", bytes, RandomRequest.range) }

    func run() async throws {
        let random = try await withClient(client) { try await $0.random(bytes: bytes) }
        if client.json { return try printJSON(["random": random.base64EncodedString()]) }
        printShown(random.base64EncodedString())
    }
}

/// A numeric flag outside the range the server takes, refused before anything is sent and named as the
/// flag: the server's refusal names its JSON member (`bytes`, `pendingWindowDays`; a newcomer's walkthrough).
func checkRange(_ flag: String, _ value: Int, _ range: ClosedRange<Int64>) throws {
    guard range.contains(Int64(value)) else {
        throw ValidationError("\(flag) must be from \(range.lowerBound) to \(range.upperBound)")
    }
}
