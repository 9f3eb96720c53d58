import Foundation

/// Reads a `.env` file: `KEY=VALUE` lines, `#` comments (after a value too), an optional
/// `export ` and single or double quotes around the value; a key set twice is refused. Values are taken
/// as written (no interpolation), so a key in the file cannot expand another.
public enum DotEnv {
    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String) throws(ParseError) -> [String: String] {
        var values: [String: String] = [:]
        var lineOf: [String: Int] = [:]
        // "\r\n" is one Character in Swift, which a split on "\n" never matches: a CRLF file (saved on Windows)
        // was one line, and its first setting took the rest of the file as its value (a review: the server
        // then made a new master key at a path of CR/LF-named folders and started on an empty store).
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (number, rawLine) in lines.enumerated() {
            var line = Substring(rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine)
            // A carriage return or another control character inside a line (an old Mac file's CR-only line
            // ends): its first setting would take the rest of the file (a review), so the file is refused.
            guard !line.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) else {
                throw ParseError(
                    description:
                        ".env line \(number + 1): a control character (a carriage return without a line feed?): save the file with LF or CRLF line ends"
                )
            }
            line = line.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst("export ".count).drop { $0 == " " } }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError(description: ".env line \(number + 1): expected KEY=VALUE")
            }
            let key = line[..<equals].trimmingSpaces()
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw ParseError(description: ".env line \(number + 1): invalid variable name")
            }
            var value = line[line.index(after: equals)...].trimmingSpaces()
            if let quote = value.first, quote == "\"" || quote == "'" {
                // The first quote after which nothing or a comment follows closes it: a value may hold its
                // own quote character (`'it's'`), and a comment may follow, quotes and all (`KEY="v" # "a"`;
                // a probe was told "unterminated quote").
                let rest = value.dropFirst()
                let close = rest.indices.first { index in
                    guard rest[index] == quote else { return false }
                    let after = rest[rest.index(after: index)...].trimmingSpaces()
                    return after.isEmpty || after.hasPrefix("#")
                }
                guard let close else {
                    throw ParseError(description: ".env line \(number + 1): unterminated quote")
                }
                value = rest[..<close]
            } else if let hash = value.indices.first(where: { index in
                value[index] == "#" && index > value.startIndex
                    && [" ", "\t"].contains(value[value.index(before: index)])
            }) {
                // After a space or a tab (a review: a tab-aligned comment became part of a path).
                value = value[..<hash].trimmingSpaces()
            }
            // Set twice, one of the two is not what the operator reads (a probe: the last won silently).
            if let first = lineOf[String(key)] {
                throw ParseError(description: ".env line \(number + 1): \(key) is set already on line \(first)")
            }
            lineOf[String(key)] = number + 1
            values[String(key)] = String(value)
        }
        return values
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var text = self.drop { $0 == " " || $0 == "\t" }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
