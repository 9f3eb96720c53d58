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

    /// Names are file names: anything that is not one (a crafted restore) is refused.
    private func url(_ name: String) throws(KMSError) -> URL {
        guard FileKeyStore.isSafeName(name) else { throw KMSError(.invalidRequest, "not a secret name") }
        return folder.appendingPathComponent("\(name).secret.json")
    }

    public func blob(named name: String) async throws(KMSError) -> Data? {
        try lock.withLock { _ throws(KMSError) in try read(name) }
    }

    public func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data {
        try lock.withLock { _ throws(KMSError) in
            guard let current = try read(name), current == expected else { return try read(name) ?? expected }
            let target = try url(name)
            let json = "{\"name\":\"\(name)\",\"wrapped\":\"\(Base64.encode(wrapped))\"}\n"
            do {
                try DurableFile.write(Data(json.utf8), to: target)
            } catch {
                throw KMSError.storageUnavailable("cannot store \(name): \(error)")
            }
            return wrapped
        }
    }

    public func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data {
        try lock.withLock { _ throws(KMSError) in
            if let existing = try read(name) { return existing }
            let target = try url(name)
            let json = "{\"name\":\"\(name)\",\"wrapped\":\"\(Base64.encode(wrapped))\"}\n"
            do {
                // Another process may publish first: then its blob is the one.
                guard try DurableFile.createExclusive(Data(json.utf8), at: target) else {
                    return try read(name) ?? wrapped
                }
            } catch {
                throw KMSError.storageUnavailable("cannot store \(name): \(error)")
            }
            return wrapped
        }
    }

    private func read(_ name: String) throws(KMSError) -> Data? {
        let file = try url(name)
        guard let contents = try DurableFile.storedBytes(file) else { return nil }
        var reader: JSONObjectReader
        do {
            reader = try JSONObjectReader(bytes: contents)
            _ = try reader.string("name")
            let wrapped = try reader.bytes("wrapped", maxBytes: 1 << 20)
            try reader.finish()
            return wrapped
        } catch {
            throw KMSError.internal("\(file.path) is corrupt: \(error.message)")
        }
    }
}
