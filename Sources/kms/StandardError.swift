import Foundation
import KMSProtocol
import Synchronization

/// Writes `text` to standard error as it is (no newline added). A full disk
/// or a closed pipe loses the text: Foundation's deprecated `write(_:)` traps
/// there, which made `kms serve > /dev/full` crash at its first line.
func writeToStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}

/// Writes an error message to standard error after `Error: `, each line's
/// control and invisible characters shown as `\u{…}` escapes: a message may
/// quote a database server, a server that sent something unreadable, or a
/// file, and a terminal must not act on what they put in it.
func writeErrorMessage(_ message: String) {
    writeToStandardError("Error: " + shownInError(message) + "\n")
}

/// `message` made safe for a terminal line by line (ArgumentParser's usage
/// lines stay lines), backslashes left as they are: a message may already
/// hold `TerminalText.escaped` text.
func shownInError(_ message: String) -> String {
    message.split(separator: "\n", omittingEmptySubsequences: false)
        .map { TerminalText.escaped(String($0), doublingBackslashes: false) }.joined(separator: "\n")
}

/// The notes already written by this process.
private let notesWritten = Mutex<Set<String>>([])

/// Writes `text` to standard error the first time this process writes it: a
/// command that makes several clients (`kms e2e`) says each note once.
func noteOnce(_ text: String) {
    guard notesWritten.withLock({ $0.insert(text).inserted }) else { return }
    writeToStandardError(text)
}
