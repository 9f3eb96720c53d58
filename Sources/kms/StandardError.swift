import Foundation
import Synchronization

/// Writes `text` to standard error (no newline added); its interpolated
/// values are escaped (`ShownText`). A full disk or a closed pipe loses the
/// text: Foundation's deprecated `write(_:)` traps there, which made `kms
/// serve > /dev/full` crash at its first line.
func writeToStandardError(_ text: ShownText) {
    try? FileHandle.standardError.write(contentsOf: Data(text.text.utf8))
}

/// Writes an error message to standard error after `Error: `, on one line:
/// a message may quote a database server, a server that sent something
/// unreadable, or a file's name, and a terminal must neither act on what
/// they put in it nor take a line break in it for a line of ours.
func writeErrorMessage(_ message: String) {
    writeToStandardError("Error: \(message)\n")
}

/// The notes already written by this process.
private let notesWritten = Mutex<Set<String>>([])

/// Writes `text` to standard error the first time this process writes it: a
/// command that makes several clients (`kms e2e`) says each note once.
func noteOnce(_ text: ShownText) {
    guard notesWritten.withLock({ $0.insert(text.text).inserted }) else { return }
    writeToStandardError(text)
}
