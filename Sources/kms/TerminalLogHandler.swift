import Foundation
import Logging

/// The log handler of every verb but `kms serve` (whose log is JSON on
/// standard output): one line on standard error per message, through
/// `writeToStandardError`, so a path, a database host or an error detail in
/// a message or its metadata is escaped like everything else written there.
/// swift-log's default handler wrote them raw (a review found the master
/// key's and the audit log's paths reaching the terminal that way).
struct TerminalLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    private let label: String

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var line: ShownText = "\(label): \(event.level.rawValue): \(event.message.description)"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value.description)"
        }
        writeToStandardError(line + "\n")
    }
}
