import Foundation
import KMSClient

// Everything `kms` writes to standard output goes through this file
// (`OutputDisciplineTests` holds the rest of the target to it). Text from a
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

/// Writes `data` to standard output unchanged: a decrypted plaintext, a
/// file's bytes or a backup, which the person asked for byte for byte. The
/// callers decide about terminals (`kms decrypt` refuses to show control
/// characters on one, `decrypt-file … -` refuses one).
func writeToStandardOutput(_ data: Data) throws {
    try FileHandle.standardOutput.write(contentsOf: data)
}
