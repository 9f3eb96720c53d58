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
}
