import Foundation
import Testing

@testable import KMSServer

/// The `kms` target writes standard output only through `Sources/kms/Output.swift`, whose
/// functions escape what a terminal would act on. A bare `print(` elsewhere would be the one
/// place a server's, a file's or an audit log's text reaches the terminal raw (reviews found
/// such places twice), so this reads the target's source and refuses one.
@Suite struct OutputDisciplineTests {
    static let sources = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/kms")

    @Test func standardOutputIsWrittenOnlyByTheOutputFile() throws {
        // print, dump, C's stdio, and standard output by descriptor: everything but `isatty(STDOUT_FILENO)`.
        let found = try Self.lines(
            matching:
                #"(?<![A-Za-z0-9_])(Swift\.)?(print|debugPrint|dump)\s*[()]|\bstdout\b|\b(f?puts|fwrite|putchar|v?printf)\b|FileHandle\.standardOutput\b|fileDescriptor:\s*1\b|(?<!isatty\()STDOUT_FILENO"#,
            outside: "Output.swift")
        #expect(found.isEmpty, "write standard output through Output.swift:\n\(found.joined(separator: "\n"))")
    }

    /// Standard error likewise, through `writeToStandardError`, which takes a `ShownText`: its
    /// interpolated values (a path, a database's message) are escaped, line breaks included, so a
    /// file named `x\nkms: all fine` cannot forge a line (a change after stop 39).
    @Test func standardErrorIsWrittenOnlyByTheStandardErrorFile() throws {
        // Also swift-log's own stream handler (TerminalLogHandler escapes), NSLog and write(2, …).
        let found = try Self.lines(
            matching:
                #"\bstderr\b|FileHandle\.standardError\b|FileDescriptor\.standardError\b|fileDescriptor:\s*2\b|(?<!isatty\()STDERR_FILENO|\bwrite\(\s*2\s*,|StreamLogHandler|\bNSLog\b"#,
            outside: "StandardError.swift")
        #expect(found.isEmpty, "write standard error through StandardError.swift:\n\(found.joined(separator: "\n"))")
        // Text that skips the escaping of values is made only inside ShownText.swift.
        let unescaped = try Self.lines(matching: #"stringLiteral:"#, outside: "ShownText.swift")
        #expect(unescaped.isEmpty, "\(unescaped)")
        // Names of the terminal's devices sit in string literals, which the scan empties: read for them whole.
        for file in try Self.swiftFiles() {
            let text = try String(contentsOf: Self.sources.appendingPathComponent(file), encoding: .utf8)
            #expect(!text.contains("/dev/stderr"), "\(file)")
            #expect(!text.contains("\"/dev/tty\"") || file == "Client/TerminalPrompt.swift", "\(file)")
        }
    }

    static func swiftFiles() throws -> [String] {
        try #require(FileManager.default.enumerator(atPath: Self.sources.path)?.allObjects as? [String])
            .filter { $0.hasSuffix(".swift") }
    }

    /// The lines of the `kms` target's source, other than `allowed`, whose code (string literals
    /// emptied, comments cut) matches `pattern`.
    static func lines(matching pattern: String, outside allowed: String) throws -> [String] {
        let files = try swiftFiles()
        #expect(files.contains(allowed) && files.count > 20, "\(files)")
        let forbidden = try NSRegularExpression(pattern: pattern)
        let literal = try NSRegularExpression(pattern: #""(?:[^"\\]|\\.)*""#)
        var found: [String] = []
        for file in files where file != allowed {
            let text = try String(contentsOf: Self.sources.appendingPathComponent(file), encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                // String literals emptied first (a URL's `//` is not a comment), then the comment cut.
                let line = String(line)
                let unquoted = literal.stringByReplacingMatches(
                    in: line, range: NSRange(line.startIndex..., in: line), withTemplate: "\"\"")
                let code = String(unquoted.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false)[0])
                let range = NSRange(code.startIndex..., in: code)
                if forbidden.firstMatch(in: code, range: range) != nil {
                    found.append("\(file):\(number + 1): \(line)")
                }
            }
        }
        return found
    }

    /// `kms serve`'s log goes to standard output too, often a terminal: a client's words in a field
    /// come out with DEL, C1 and bidi overrides as `\u` escapes, the same JSON to a log collector.
    @Test func theServersLogLinesCarryNoTerminalControls() throws {
        let fields = ["detail": "a\u{7f}b\u{9b}2J\u{202e}c\u{1b}", "msg": "plain"]
        let line = try #require(JSONLogHandler.line(fields))
        let text = String(decoding: line, as: UTF8.self)
        #expect(
            !text.unicodeScalars.contains {
                $0.value == 0x7F || (0x80...0x9F).contains($0.value) || $0 == "\u{202e}" || $0 == "\u{1b}"
            })
        #expect(text.hasSuffix("}\n"), "\(text)")
        let decoded = try JSONDecoder().decode([String: String].self, from: line)
        #expect(decoded == fields)
    }
}
