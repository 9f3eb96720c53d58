import Foundation
import Testing

/// The `kms` target writes standard output only through `Sources/kms/Output.swift`, whose
/// functions escape what a terminal would act on. A bare `print(` elsewhere would be the one
/// place a server's, a file's or an audit log's text reaches the terminal raw (reviews found
/// such places twice), so this reads the target's source and refuses one.
@Suite struct OutputDisciplineTests {
    static let sources = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/kms")

    @Test func standardOutputIsWrittenOnlyByTheOutputFile() throws {
        let files = try #require(FileManager.default.enumerator(atPath: Self.sources.path)?.allObjects as? [String])
            .filter { $0.hasSuffix(".swift") }
        #expect(files.contains("Output.swift") && files.count > 20, "\(files)")
        let forbidden = try NSRegularExpression(
            pattern:
                #"(?<![A-Za-z0-9_.])(print|debugPrint|dump)\(|FileHandle\.standardOutput\b|\bputs\(|STDOUT_FILENO\s*,"#)
        let literal = try NSRegularExpression(pattern: #""(?:[^"\\]|\\.)*""#)
        var found: [String] = []
        for file in files where file != "Output.swift" {
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
        #expect(found.isEmpty, "write standard output through Output.swift:\n\(found.joined(separator: "\n"))")
    }
}
