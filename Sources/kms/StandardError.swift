import Foundation
import Synchronization

/// Writes `text` to standard error as it is (no newline added). A full disk
/// or a closed pipe loses the text: Foundation's deprecated `write(_:)` traps
/// there, which made `kms serve > /dev/full` crash at its first line.
func writeToStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}

/// The notes already written by this process.
private let notesWritten = Mutex<Set<String>>([])

/// Writes `text` to standard error the first time this process writes it: a
/// command that makes several clients (`kms e2e`) says each note once.
func noteOnce(_ text: String) {
    guard notesWritten.withLock({ $0.insert(text).inserted }) else { return }
    writeToStandardError(text)
}
