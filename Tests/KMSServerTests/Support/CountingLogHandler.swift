import Logging
import Synchronization

/// A log handler that only counts messages by text: how the tests measure
/// what a flood costs in log lines without reading the process's output.
final class LogCounter: Sendable {
    let counts = Mutex<[String: Int]>([:])

    func count(_ message: String) -> Int { counts.withLock { $0[message] ?? 0 } }

    var logger: Logger {
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
            counter.counts.withLock { $0[event.message.description, default: 0] += 1 }
        }
    }
}
