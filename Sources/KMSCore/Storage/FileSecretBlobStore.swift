public import Foundation
import KMSProtocol
import Synchronization

/// `SecretBlobStore` in the key store folder: one `<name>.secret.json` file
/// per blob, `{ "name", "wrapped" }`, written durably with mode 0600.
public final class FileSecretBlobStore: SecretBlobStore {
    private let folder: URL
    private let lock = Mutex(())

    public init(folder: URL) {
        self.folder = folder
    }

    private func url(_ name: String) -> URL {
        folder.appendingPathComponent("\(name).secret.json")
    }

    public func blob(named name: String) async throws(KMSError) -> Data? {
        try lock.withLock { _ throws(KMSError) in try read(name) }
    }

    public func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data {
        try lock.withLock { _ throws(KMSError) in
            guard let current = try read(name), current == expected else { return try read(name) ?? expected }
            let json = "{\"name\":\"\(name)\",\"wrapped\":\"\(Base64.encode(wrapped))\"}\n"
            do {
                try DurableFile.write(Data(json.utf8), to: url(name))
            } catch {
                throw KMSError.storageUnavailable("cannot store \(name): \(error)")
            }
            return wrapped
        }
    }

    public func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data {
        try lock.withLock { _ throws(KMSError) in
            if let existing = try read(name) { return existing }
            let json = "{\"name\":\"\(name)\",\"wrapped\":\"\(Base64.encode(wrapped))\"}\n"
            do {
                // Another process may publish first: then its blob is the one.
                guard try DurableFile.createExclusive(Data(json.utf8), at: url(name)) else {
                    return try read(name) ?? wrapped
                }
            } catch {
                throw KMSError.storageUnavailable("cannot store \(name): \(error)")
            }
            return wrapped
        }
    }

    private func read(_ name: String) throws(KMSError) -> Data? {
        guard let contents = FileManager.default.contents(atPath: url(name).path) else { return nil }
        var reader: JSONObjectReader
        do {
            reader = try JSONObjectReader(bytes: contents)
            _ = try reader.string("name")
            let wrapped = try reader.bytes("wrapped", maxBytes: 1 << 20)
            try reader.finish()
            return wrapped
        } catch {
            throw KMSError.internal("\(url(name).path) is corrupt: \(error.message)")
        }
    }
}
