import Foundation

/// Writes `text` to standard error as it is (no newline added). A full disk
/// or a closed pipe loses the text: Foundation's deprecated `write(_:)` traps
/// there, which made `kms serve > /dev/full` crash at its first line.
func writeToStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}
