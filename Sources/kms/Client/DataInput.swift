import ArgumentParser
import Foundation
import KMSProtocol

/// Input bytes from an argument, a file, or standard input.
struct DataInput: ParsableArguments {
    @Argument(help: "The input as text; omit it (or give -) to read --file or standard input.")
    var text: String?

    @Option(name: .long, help: "Read the input from this file ('-' for standard input).")
    var file: String?

    @Flag(name: .long, help: "The input is base64 (decoded before use).")
    var base64 = false

    /// Both forms given is refused, never one of them silently used: `kms encrypt --file in out`, a slip
    /// from `encrypt-file IN OUT`, encrypted the text "out" (a review).
    func validate() throws {
        if text != nil, file != nil {
            throw ValidationError(
                "give the input as a text argument or with --file, not both (to encrypt a file into another, use encrypt-file IN OUT)"
            )
        }
    }

    /// The text argument, unless it is `-` (standard input).
    var literal: String? { text == "-" ? nil : text }

    /// The most `--file` reads: past any request the server takes.
    static let maxFileBytes = 16 << 20

    /// At most `maxFileBytes` of `handle`, or a usage error naming it: `/dev/zero` would otherwise grow
    /// until the process is killed (the server's body limit, 1 MiB by default, refuses far less anyway).
    static func readBounded(_ handle: FileHandle, named name: String) throws -> Data {
        let data: Data
        do {
            data = try handle.read(upToCount: maxFileBytes + 1) ?? Data()
        } catch {
            throw ValidationError(
                "io_error: cannot read \(name): \((error as? CocoaError).map(posixReason) ?? "\(error)")")
        }
        guard data.count <= maxFileBytes else {
            throw ValidationError(
                "\(name) is larger than \(maxFileBytes / (1 << 20)) MiB; for files, use encrypt-file and decrypt-file")
        }
        return data
    }

    /// The input as text without surrounding whitespace (ciphertexts).
    func readText() throws -> String {
        String(decoding: try read(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Where the input came from, for a message.
    var source: String {
        if literal != nil { return "the argument" }
        if let file, file != "-" { return file }
        return "standard input"
    }

    /// A ciphertext read from `source`, refused when there is none: a pipe from a command that failed
    /// (`cat missing | kms decrypt`) was sent on and answered "`ciphertext` is not a ciphertext of this
    /// KMS" (a newcomer's walkthrough).
    func readCiphertext() throws -> String {
        let text = try readText()
        guard !text.isEmpty else { throw ValidationError("no ciphertext: \(source) held none") }
        return text
    }

    func read() throws -> Data {
        try validate()
        let data: Data
        // `-` is standard input, as it is for the file verbs and `--file`: it encrypted the one-byte text
        // "-" (a probe). That text can still be given through standard input or --file.
        if let literal {
            data = Data(literal.utf8)
        } else if let file, file != "-" {
            // Read as a stream, so that a pipe (`--file <(…)`) or a device works as standard input does.
            guard !file.isEmpty, !FileEndpoints.isFolder(file), let handle = FileHandle(forReadingAtPath: file) else {
                // The system's reason, as the file verbs give it (docs/files.md).
                let reason =
                    file.isEmpty
                    ? "an empty path"
                    : FileEndpoints.isFolder(file)
                        ? "a folder"
                        : access(file, R_OK) != 0 ? String(cString: strerror(errno)) : "it cannot be opened"

                throw ValidationError("io_error: cannot read \(file): \(reason)")
            }
            defer { try? handle.close() }
            data = try Self.readBounded(handle, named: file)
        } else {
            // The same bound and errors for standard input (a review: `kms decrypt < /dev/zero` grew until the
            // machine ran out of memory, and a closed or unreadable one trapped in Foundation's read).
            data = try Self.readBounded(FileHandle.standardInput, named: "standard input")
        }
        guard base64 else { return data }
        let trimmed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let decoded = Base64.decodeStrict(trimmed) else {
            throw ValidationError("--base64 was given but the input is not standard padded base64")
        }
        return decoded
    }
}

/// `--aad` as text, `--aad-base64`, or `--encryption-context` (aws-kms-v1 section 5: the AWS door's
/// `EncryptionContext` is the same AAD, serialized as the Encryption SDK does, so a ciphertext made by
/// `aws kms encrypt --encryption-context …` opens here with the same context, and the other way round).
struct AADOptions: ParsableArguments {
    /// What the aws CLI's shorthand takes in a key.
    static let shorthandKeyCharacters = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.#/:")

    @Option(name: .long, help: "Additional authenticated data, as text (must be given again to decrypt).")
    var aad: String?

    @Option(name: .customLong("aad-base64"), help: "Additional authenticated data, as base64.")
    var aadBase64: String?

    @Option(
        name: .customLong("encryption-context"),
        help: ArgumentHelp(
            "An AWS encryption context, as the aws CLI takes it: key=value pairs separated by commas, or a JSON object of strings. Given once.",
            valueName: "context"))
    var encryptionContext: [String] = []

    func validate() throws {
        let given = [aad != nil, aadBase64 != nil, !encryptionContext.isEmpty].filter { $0 }.count
        if given > 1 { throw ValidationError("give one of --aad, --aad-base64 and --encryption-context, not both") }
    }

    func read() throws -> Data? {
        try validate()
        if let aadBase64 {
            guard let data = Base64.decodeStrict(aadBase64) else { throw ValidationError("--aad-base64 is not base64") }
            return data
        }
        if !encryptionContext.isEmpty { return try Self.encode(encryptionContext) }
        return aad.map { Data($0.utf8) }
    }

    /// The pairs of every `--encryption-context` as the AAD bytes. A key given twice is refused, never
    /// one of its values silently kept: the context must be given again, the same, to decrypt. The
    /// shorthand follows the aws CLI's where both accept it (spaces around keys and values dropped,
    /// the first `=` splits); what the aws CLI reads its own way (quotes, backslash escapes, a key
    /// outside its characters) is refused with a pointer to the JSON form, never read differently (a
    /// review: `a=b, c=d` kept the space in " c", so the AAD differed from the aws CLI's for the same text).
    static func encode(_ arguments: [String]) throws -> Data {
        // The aws CLI keeps only the last of several, silently: one is asked for (a review).
        guard arguments.count == 1 else {
            throw ValidationError(
                "give --encryption-context once, every pair in it (the aws CLI keeps only the last of several)")
        }
        var context: [String: String] = [:]
        func add(_ key: String, _ value: String) throws {
            guard !key.isEmpty else { throw ValidationError("--encryption-context: a key is empty") }
            guard context.updateValue(value, forKey: key) == nil else {
                throw ValidationError("--encryption-context: the key '\(key)' is given twice")
            }
        }
        for argument in arguments {
            let trimmed = argument.trimmingCharacters(in: .whitespacesAndNewlines)
            // The aws CLI reads a file or a URL there, not the text.
            if ["file://", "fileb://", "http://", "https://"].contains(where: { trimmed.lowercased().hasPrefix($0) }) {
                throw ValidationError(
                    "--encryption-context: the aws CLI reads a file or URL given as \(trimmed.prefix(8))…; give the context itself"
                )
            }
            if trimmed.first == "{" {
                // The project's strict parser: duplicate (or canonically equal) keys and trailing commas
                // are refused, where JSONSerialization kept the last of two.
                guard case .object(let members)? = try? JSONParser.parse(Array(trimmed.utf8)) else {
                    throw ValidationError(
                        "--encryption-context: a JSON context must be one object of strings, each key once")
                }
                for (key, value) in members {
                    guard case .string(let text) = value else {
                        throw ValidationError("--encryption-context: a JSON context must be an object of strings")
                    }
                    try add(key, text)
                }
                continue
            }
            for pair in argument.split(separator: ",", omittingEmptySubsequences: false) {
                guard let equals = pair.firstIndex(of: "=") else {
                    throw ValidationError(
                        "--encryption-context: '\(pair)' is not key=value (a value with a comma needs the JSON form)")
                }
                // Spaces and tabs around a key or value are dropped, as the aws CLI drops them; any other
                // white space or control character at an edge, or a control character anywhere, the aws
                // CLI treats its own way (a CR from a file with Windows line ends it drops; a no-break
                // space it keeps): refused, never read differently (a review).
                let blank = CharacterSet(charactersIn: " \t")
                let key = pair[..<equals].trimmingCharacters(in: blank)
                let value = pair[pair.index(after: equals)...].trimmingCharacters(in: blank)
                let edges = CharacterSet.whitespacesAndNewlines.union(.controlCharacters)
                guard key.unicodeScalars.allSatisfy(Self.shorthandKeyCharacters.contains),
                    !value.contains(where: { $0 == "\"" || $0 == "'" || $0 == "\\" }),
                    !value.unicodeScalars.contains(where: { TerminalText.isControl($0) }),
                    value.unicodeScalars.first.map({ !edges.contains($0) }) ?? true,
                    value.unicodeScalars.last.map({ !edges.contains($0) }) ?? true
                else {
                    throw ValidationError(
                        "--encryption-context: '\(pair)' needs the JSON form, '{\"key\":\"value\"}' (the aws CLI's shorthand takes keys of A-Z a-z 0-9 - _ . # / : only, and reads quotes, backslashes, control characters and white space at a value's edges its own way)"
                    )
                }
                try add(key, value)
            }
        }
        guard let encoded = EncryptionContext.encode(context) else {
            throw ValidationError(
                "--encryption-context is longer than \(EncryptionContext.maxEncodedBytes) bytes once encoded")
        }
        return encoded
    }
}
