import Foundation
import KMSProtocol
public import Logging
import Synchronization

/// A swift-log handler writing one JSON object per line to standard output.
///
/// Whatever is logged must already be free of secrets: the request path logs
/// ids, addresses, routes and statuses only, never bodies or tokens.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private static let output = Mutex(())

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata { fields[key] = value.description }
        for (key, value) in event.metadata ?? [:] { fields[key] = value.description }
        fields["ts"] = Timestamp.format(Date())
        fields["level"] = event.level.rawValue
        fields["logger"] = label
        fields["msg"] = event.message.description
        guard let line = Self.line(fields) else { return }
        Self.output.withLock { _ in
            // A full disk or a closed pipe loses the line; the deprecated write(_:) would trap (a crash).
            try? FileHandle.standardOutput.write(contentsOf: line)
        }
    }

    /// One log line: the fields as JSON with sorted keys, what JSON leaves raw and a terminal acts on
    /// (DEL, C1, bidi overrides) as `\u` escapes, and a line end. A client's words (a key id or a
    /// detail as sent) can reach the fields, and `kms serve` in a terminal would act on them.
    static func line(_ fields: [String: String]) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let encoded = try? encoder.encode(fields) else { return nil }
        var line = TerminalText.jsonEscapedIfNeeded(encoded).map { Data($0.utf8) } ?? encoded
        line.append(0x0A)
        return line
    }
}
