import Logging
import Synchronization

/// A log handler that counts messages by text and keeps their metadata: how the tests measure
/// what a flood costs in log lines, and read what a line said, without reading the process's output.
public final class LogCounter: Sendable {
    public let counts = Mutex<[String: Int]>([:])
    /// The longest metadata value (UTF-8 bytes) seen with each message.
    public let longest = Mutex<[String: Int]>([:])

    /// Every metadata value seen with each message, in order.
    public let values = Mutex<[String: [String]]>([:])

    public func count(_ message: String) -> Int { counts.withLock { $0[message] ?? 0 } }

    /// The values `key` had in each `message`.
    public func values(_ message: String, _ key: String) -> [String] {
        values.withLock { $0[message] ?? [] }.compactMap { entry in
            entry.hasPrefix(key + "=") ? String(entry.dropFirst(key.count + 1)) : nil
        }
    }

    public func longestValue(_ message: String) -> Int { longest.withLock { $0[message] ?? 0 } }

    public init() {}

    public var logger: Logger {
        var logger = Logger(label: "kms-test-counting") { _ in Handler(counter: self) }
        logger.logLevel = .info
        return logger
    }

    struct Handler: LogHandler {
        let counter: LogCounter
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let message = event.message.description
            counter.counts.withLock { $0[message, default: 0] += 1 }
            let values = (event.metadata ?? [:]).values.map { "\($0)".utf8.count }
            counter.longest.withLock { $0[message] = max($0[message] ?? 0, values.max() ?? 0) }
            let entries = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }
            counter.values.withLock { $0[message, default: []] += entries }
        }
    }
}
