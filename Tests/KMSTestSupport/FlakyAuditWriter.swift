public import Foundation
public import KMSCore
public import Synchronization

/// An audit writer over a real file whose disk can be made to fail, or to
/// hang, on demand: how the tests prove the log fails closed without hanging.
public final class FlakyAuditWriter: AuditFileWriter {
    public let base: AuditFile
    public let failing = Mutex(false)
    public let hanging = Mutex(false)
    /// Microseconds each append takes (a slow disk that never stops the writer's loop).
    public let appendDelay = Mutex<UInt32>(0)

    public init(url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        base = try AuditFile(url: url)
    }

    private func check() throws {
        while hanging.withLock({ $0 }) { usleep(10_000) }
        if failing.withLock({ $0 }) { throw CocoaError(.fileWriteUnknown) }
    }

    public func append(_ data: Data) throws {
        try check()
        let delay = appendDelay.withLock { $0 }
        if delay > 0 { usleep(delay) }
        try base.append(data)
    }

    public func sync() throws {
        try check()
        try base.sync()
    }

    public func size() throws -> Int { try base.size() }
    public func rotate(to rotatedName: String) throws { try base.rotate(to: rotatedName) }
    public func reopenIfReplacedAndSize() throws -> (reopened: Bool, size: Int) {
        try base.reopenIfReplacedAndSize()
    }
    public func truncate(to size: Int) throws { try base.truncate(to: size) }
}
