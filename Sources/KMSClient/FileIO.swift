public import Foundation

/// Reading for file encryption: exact-count reads from a file handle.
public enum FileIO {
    /// Reads `count` bytes, fewer only at the end of the input (a pipe may
    /// return less per read).
    public static func readExactly(_ handle: FileHandle, _ count: Int) throws -> Data {
        var data = Data()
        while data.count < count {
            guard let chunk = try handle.read(upToCount: count - data.count), !chunk.isEmpty else { break }
            data.append(chunk)
        }
        return data
    }
}

/// An output file written as a temporary file in the destination's folder
/// (mode 0600), fsynced and renamed over the destination only by `commit`,
/// then the folder fsynced; `discard` removes it. A failed run leaves no
/// output and no temporary file, and an existing destination as it was.
public final class AtomicOutputFile {
    public let destination: URL
    let temporary: URL
    public let handle: FileHandle

    public init(_ destination: URL) throws {
        self.destination = destination
        let folder = destination.deletingLastPathComponent()
        let name = ".\(destination.lastPathComponent).kms-tmp-\(UUID().uuidString.prefix(8))"
        temporary = folder.appendingPathComponent(name)
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    public func write(_ data: Data) throws {
        try handle.write(contentsOf: data)
    }

    /// fsync, rename over the destination, fsync the folder.
    public func commit() throws {
        try handle.synchronize()
        try handle.close()
        guard rename(temporary.path, destination.path) == 0 else {
            discard()
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: destination.path])
        }
        let folder = open(destination.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folder >= 0 {
            _ = fsync(folder)
            close(folder)
        }
    }

    /// Runs `body` against a new temporary file for `destination`, committed
    /// only when `body` returns, discarded when it throws.
    public static func writing<T>(_ destination: URL, _ body: (AtomicOutputFile) async throws -> T) async throws -> T {
        let sink = try AtomicOutputFile(destination)
        do {
            let result = try await body(sink)
            try sink.commit()
            return result
        } catch {
            sink.discard()
            throw error
        }
    }

    /// Removes the temporary file (after a failure).
    public func discard() {
        try? handle.close()
        unlink(temporary.path)
    }
}
