import ArgumentParser
import CProcessHardening
import Foundation
import KMSProtocol

// Everything the `kms` target writes to standard output goes through this
// file (`OutputDisciplineTests` holds the rest of the target to it; `kms
// serve`'s JSON log is KMSServer's `JSONLogHandler`, escaped by the same rule). Text from a
// server, a file header, an audit log or a folder listing is nobody's to
// trust: written raw, a control or invisible character could clear the
// screen, recolour it, forge a line ("audit log OK") or reorder what is read.

/// Prints one line of text output, escaped as `TerminalText.escaped` does
/// (controls and invisible characters as `\u{XX}`, backslashes doubled).
/// A server that got past the key check, a file anyone wrote, or an edited
/// audit log then shows what it holds instead of acting on the terminal.
func printShown(_ line: String) {
    print(TerminalText.escaped(line))
}

/// Prints one line whose parts the caller escaped itself, each by `TerminalText.escaped` (a file's context
/// key with its joiners written out, its value with them kept: `inspect-file`).
func printShown(escapedParts parts: [String]) {
    print(parts.joined())
}

/// Prints `value` as JSON (sorted keys), for `--json`, with what JSON leaves
/// raw and a terminal acts on (DEL, C1, bidi overrides) as `\u` escapes.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    printJSONText(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints JSON text this program encoded, with the escapes `printJSON` adds.
func printJSONText(_ json: String) {
    print(TerminalText.jsonEscaped(json))
}

/// Prints PEM line by line, each escaped as `printShown` does: base64 and
/// its boundaries are unchanged by that, and a certificate file's text (read
/// block by block, not parsed) cannot slip anything else through.
func printPEM(_ pem: String) {
    var lines = pem.split(separator: "\n", omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    for line in lines { printShown(String(line)) }
}

/// Ends the process for `error` as ArgumentParser's `exit(withError:)` does
/// (help and `--version` on standard output, status 0; anything else on
/// standard error with its status), with the error's text shown as
/// `ShownText.error` makes it safe: its message on one line.
///
/// `hidingLongArguments`: the command line, for an error of its parsing; an
/// argument of it that is long and not an option's name is not repeated.
func exitReporting(_ error: any Error, hidingLongArguments arguments: [String] = []) -> Never {
    exit(reportFailure(error, hidingLongArguments: arguments).rawValue)
}

/// Writes what `exitReporting` writes for `error` and gives its exit code, for an end that is not `exit`.
@discardableResult
func reportFailure(_ error: any Error, hidingLongArguments arguments: [String] = []) -> ExitCode {
    let code = (error as? CLIFailure)?.status ?? KMSCommand.exitCode(for: error)
    let text = KMSCommand.fullMessage(for: error)
    if !text.isEmpty {
        if code == .success {
            print(text)
            // Help and --version are output too: one that cannot be written fails (`kms --help > /dev/full`).
            finishStandardOutput()
        } else {
            let hidden = LongArguments(arguments)
            let shown = ShownText.error(
                message: hidden.hide(in: KMSCommand.message(for: error)), fullMessage: hidden.hide(in: text))
            writeToStandardError("\(shown)\n")
            // A PEM private key given to `clients add --public-key`, where ArgumentParser read it as an option,
            // is refused without a word of why; the advice is given here (never the key). Only there: another
            // verb's argument may mention a PEM (a review: a plaintext did), and `audit verify`'s key is not a
            // device's.
            if !text.contains(privateKeyAdvice), KMSCommand.givesPrivateKeyToEnrol(arguments) {
                writeToStandardError("note: an argument holds a private key: \(privateKeyAdvice)\n")
            }
        }
    }
    return code
}

extension KMSCommand {
    /// Whether `arguments` (without the program's name) are `clients add` with a private key as the
    /// `--public-key` value.
    static func givesPrivateKeyToEnrol(_ arguments: [String]) -> Bool {
        guard arguments.starts(with: ["clients", "add"]) else { return false }
        for (index, argument) in arguments.enumerated() {
            if argument == "--public-key", index + 1 < arguments.count {
                if ClientKeyFile.looksPrivate(arguments[index + 1]) { return true }
            } else if argument.hasPrefix("--public-key="),
                ClientKeyFile.looksPrivate(String(argument.dropFirst("--public-key=".count)))
            {
                return true
            }
        }
        return false
    }
}

/// What to do when a command line holds a private key where a public one was asked.
let privateKeyAdvice =
    "that is a private key, which never leaves its device: give --public-key the publicKey line that `kms client-key init` or `kms client-key show` printed on the device. A key on a command line can be read by other users of this machine while the command runs, and stays in your shell's history: if it is a real device's key, make a new one there and enrol that"

/// The arguments of a command line that a parse error must not quote back: those of
/// more than `Echo.maxShownLength` UTF-8 bytes (a value after `--option=` counted alone) that are not an
/// option's name. ArgumentParser quotes an argument it refuses, and one given in the wrong place
/// may be a key or a secret (a PEM private key given to `--public-key` starts with `-` and was
/// refused as an option, printed whole); a typo in an option's name, or a short value, still shows.
struct LongArguments {
    private let hidden: [String]

    init(_ arguments: [String]) {
        hidden = arguments.flatMap { argument -> [String] in
            var parts = [argument]
            if argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") {
                // ArgumentParser quotes the part before `=` of an option it does not know, the value apart.
                parts += [String(argument[..<equals]), String(argument[argument.index(after: equals)...])]
            }
            return parts.filter { !Echo.mayShow($0) && !Self.isOptionName($0) }
        }
        .sorted { $0.count > $1.count }
    }

    func hide(in text: String) -> String {
        hidden.reduce(text) { text, argument in
            text.replacingOccurrences(of: argument, with: "(an argument of \(argument.utf8.count) bytes, not shown)")
        }
    }

    private static func isOptionName(_ argument: String) -> Bool {
        let name = argument.drop { $0 == "-" }
        return argument.hasPrefix("--") && !name.isEmpty
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }
}

/// Flushes the text `print` buffered and, when any of standard output could not be written (a full
/// disk, a closed descriptor, a reader gone), ends the process with `io_error` and status 1 instead of
/// 0: a script running `kms encrypt … > file && rm plain` must not take a lost ciphertext for one
/// written (a probe: `kms encrypt … > /dev/full` exited 0). Text goes through C's buffered `stdout`,
/// whose errors only `fflush` and `ferror` tell; the raw bytes of `writeToStandardOutput` throw at once.
func finishStandardOutput() {
    let failure = kms_finish_stdout()
    guard failure != 0 else { return }
    writeToStandardError("Error: io_error: cannot write standard output: \(String(cString: strerror(failure)))\n")
    exit(1)
}

/// Why a verb that writes bytes to `-` refuses a terminal there.
let terminalRefusal =
    "standard output is a terminal, which would act on the bytes' control characters: give a file name, or send - to a file or a pipe"

/// Writes `data` to standard output unchanged: a decrypted plaintext, a
/// file's bytes or a backup, which the person asked for byte for byte. The
/// callers refuse a terminal first (`kms decrypt` one that would act on
/// the plaintext, the file verbs and `kms backup --out -` any; `terminalRefusal`).
func writeToStandardOutput(_ data: Data) throws {
    do {
        try FileHandle.standardOutput.write(contentsOf: data)
    } catch let error as CocoaError {
        // Named as `finishStandardOutput` names it (Foundation's own text was "error 512 (null)").
        throw CLIFailure(message: "io_error: cannot write standard output: \(posixReason(error))")
    }
}

/// The device and inode of what standard output is open on (nil when it cannot be examined), so a
/// file verb can refuse to write its input onto itself (`FileEndpoints.refuseOutputOntoInput`).
func standardOutputFile() -> (device: dev_t, inode: ino_t)? {
    var info = stat()
    guard fstat(STDOUT_FILENO, &info) == 0 else { return nil }
    return (info.st_dev, info.st_ino)
}
