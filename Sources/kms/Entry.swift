import ArgumentParser
import CProcessHardening
import Foundation
import Logging

/// The process entry: a standard descriptor the process started without gets
/// a placeholder before any file is opened (it would take that number), core
/// dumps go off before any command reads a key, a closed pipe becomes a write
/// error that is reported (EPIPE), not a silent SIGPIPE death before the first
/// socket (NIO ignores it from then on), and a verb whose text output could not
/// all be written fails (`finishStandardOutput`).
@main
enum Entry {
    static func main() async {
        kms_guard_standard_descriptors()
        CoreDumps.disable()
        signal(SIGPIPE, SIG_IGN)
        // An argument that is not UTF-8 reaches the commands with U+FFFD in place of its bad bytes: a file
        // name would silently name another file (a probe had a planted decoy encrypted, and its output
        // written under another name, instead of the file named), and a `--context` value would be stored
        // as another (file-format-v1 section 1 asks for UTF-8). Refused before anything runs, with the code
        // the file verbs name (file-format-v1's CLI rules: every failure names its code).
        if let refusal = argumentNotUTF8() ?? variableNotUTF8() {
            exitReporting(CLIFailure(message: refusal, status: .validationFailure))
        }
        // ArgumentParser's own `main()`, except that an error's text is made safe for a terminal
        // first: it may quote a database server or a file (a review finding).
        let parsed: any ParsableCommand
        do {
            parsed = try await KMSCommand.asyncParseAsRoot()
        } catch {
            // A refused argument is quoted back, and a key or secret given in the wrong place was
            // printed whole (a review: a PEM private key given to --public-key): long ones are not.
            exitReporting(error, hidingLongArguments: Array(CommandLine.arguments.dropFirst()))
        }
        do {
            var command = parsed
            // `kms serve` logs JSON to standard output; every other verb's log lines are escaped.
            if !(command is ServeCommand) { LoggingSystem.bootstrap(TerminalLogHandler.init) }
            do {
                if var command = command as? any AsyncParsableCommand {
                    try await command.run()
                } else {
                    try command.run()
                }
                if !(command is ServeCommand) { finishStandardOutput() }
            } catch let error as ValidationError {
                // Found while running (a file that cannot be read, a log that fails to verify): status
                // 64 as a usage error, without the root's usage lines, which say nothing about it.
                exitReporting(CLIFailure(message: error.message, status: .validationFailure))
            }
        } catch {
            exitReporting(error)
        }
    }

    /// The same for the environment variables kms reads (a path in one would name another file too).
    static func variableNotUTF8() -> String? {
        let read: Set<String> = [
            "KEY_STORE_PATH", "BASE_URL", "ROTATE_INTERVAL_MS", "HOME", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",
        ]
        var entry = environ
        while let pointer = entry.pointee {
            defer { entry += 1 }
            let bytes = Array(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)))
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let name = String(decoding: bytes[..<equals], as: UTF8.self)
            guard name.hasPrefix("KMS_") || read.contains(name),
                String(validating: bytes[(equals + 1)...], as: UTF8.self) == nil
            else { continue }
            return "io_error: the environment variable \(name) is not UTF-8 text: kms reads its settings as UTF-8"
        }
        return nil
    }

    /// Why the first argument whose bytes are not UTF-8 is refused, if one is not: a `--context` value is
    /// `header_malformed`, anything else (a file name, most often) `io_error`.
    static func argumentNotUTF8() -> String? {
        let arguments = (0..<Int(CommandLine.argc)).map { index in
            CommandLine.unsafeArgv[index].map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
        }
        let flag = Array("--context".utf8)
        for (index, bytes) in arguments.enumerated().dropFirst()
        where String(validating: bytes, as: UTF8.self) == nil {
            if arguments[index - 1] == flag || bytes.starts(with: flag + [UInt8(ascii: "=")]) {
                return "header_malformed: a --context key or value is not valid UTF-8"
            }
            return "io_error: argument \(index) is not UTF-8 text: kms reads file names and values as UTF-8 "
                + "(rename the file)"
        }
        return nil
    }
}
