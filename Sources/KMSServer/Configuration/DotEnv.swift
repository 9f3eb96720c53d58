import Foundation

/// Reads a `.env` file: `KEY=VALUE` lines, `#` comments, an optional
/// `export ` and single or double quotes around the value. Values are taken
/// as written (no interpolation), so a key in the file cannot expand another.
public enum DotEnv {
    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String) throws(ParseError) -> [String: String] {
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine)
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
                guard value.count >= 2, value.last == quote else {
                    throw ParseError(description: ".env line \(number + 1): unterminated quote")
                }
                value = value.dropFirst().dropLast()
            } else if let hash = value.range(of: " #") {
                value = value[..<hash.lowerBound].trimmingSpaces()
            }
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
