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
    /// fsync fails, and the bytes written since the last good one are lost
    /// (zeroed), as when Linux drops dirty pages after a writeback error: a
    /// later fsync succeeds without them ("fsyncgate").
    public let failingSync = Mutex(false)
    /// Rotation fails before its rename (a rotated name taken, a folder that refuses it).
    public let failingRotate = Mutex(false)
    /// The file's size at the last successful fsync.
    private let syncedSize = Mutex(0)

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
        let synced = syncedSize.withLock { $0 }
        if failingSync.withLock({ $0 }) {
            let size = try base.size()
            if size > synced {
                let handle = try FileHandle(forUpdating: base.url)
                try handle.seek(toOffset: UInt64(synced))
                try handle.write(contentsOf: Data(count: size - synced))
                try handle.close()
            }
            throw CocoaError(.fileWriteUnknown)
        }
        try base.sync()
        let size = try base.size()
        syncedSize.withLock { $0 = size }
    }

    public func size() throws -> Int { try base.size() }
    public func rotate(to rotatedName: String) throws {
        if failingRotate.withLock({ $0 }) { throw CocoaError(.fileWriteUnknown) }
        try sync()
        try base.rotate(to: rotatedName)
        syncedSize.withLock { $0 = 0 }
    }
    public func reopenIfReplacedAndSize() throws -> (reopened: Bool, size: Int) {
        let current = try base.reopenIfReplacedAndSize()
        if current.reopened { syncedSize.withLock { $0 = current.size } }
        return current
    }
    public func overwrite(_ data: Data, at offset: Int) throws {
        try check()
        try base.overwrite(data, at: offset)
    }
    public func truncate(to size: Int) throws {
        try base.truncate(to: size)
        syncedSize.withLock { $0 = min($0, size) }
    }
}
