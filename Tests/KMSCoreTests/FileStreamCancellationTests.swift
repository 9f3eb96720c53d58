import Crypto
import Foundation
import KMSProtocol
import Synchronization
import Testing

/// A whole-file encryption or decryption whose caller is cancelled stops within a batch and throws
/// `CancellationError`. Each batch runs in a task of its own, which does not inherit the caller's
/// cancellation: a cancelled caller used to seal or open the rest of the file (a review).
@Suite struct FileStreamCancellationTests {
    final class Count: Sendable {
        let value = Mutex(0)
        func add() -> Int {
            value.withLock {
                $0 += 1; return $0
            }
        }
        var current: Int { value.withLock { $0 } }
    }

    static func keys() throws -> (FileHeader, FileKeys) {
        let header = try FileHeader(wrappedKey: "x", context: [:])
        return (header, try FileKeys(dataKey: SymmetricKey(size: .bits256), header: header))
    }

    @Test(.timeLimit(.minutes(2))) func aCancelledEncryptionReadsNoFurther() async throws {
        let (header, keys) = try Self.keys()
        let reads = Count()
        // An input without end (a batch is 64 chunks at two threads): only the cancel ends the call.
        let task = Task {
            try await FileStream.encrypt(
                header: header, keys: keys, threads: 2,
                read: { count in
                    _ = reads.add()
                    return Data(count: count)
                }, write: { _ in })
        }
        while reads.current < 200 { try await Task.sleep(for: .milliseconds(1)) }
        task.cancel()
        let atCancel = reads.current
        await #expect(throws: CancellationError.self) { try await task.value }
        // At most the batch being read when the cancel came, and its look-ahead.
        #expect(reads.current - atCancel <= 66, "\(atCancel) → \(reads.current)")
    }

    @Test(.timeLimit(.minutes(2))) func aCancelledDecryptionReadsNoFurther() async throws {
        let (header, keys) = try Self.keys()
        var file = Data()
        var left = 640
        try await FileStream.encrypt(
            header: header, keys: keys, threads: 2,
            read: { count in
                left -= 1
                return left >= 0 ? Data(count: count) : Data()
            }, write: { file.append($0) })
        let length = header.encoded.count
        let sealed = file
        let reads = Count()
        let started = Count()
        let task = Task {
            try await FileStream.decrypt(
                keys: keys, headerLength: length, fileSize: UInt64(sealed.count), threads: 2,
                readAt: { offset, count in
                    _ = reads.add()
                    let from = sealed.startIndex + Int(offset)
                    return sealed[from..<min(sealed.endIndex, from + count)]
                },
                write: { _ in
                    // Held after the first batch's first chunk until the cancel.
                    if started.add() == 1 { try? await Task.sleep(for: .seconds(3600)) }
                })
        }
        while started.current < 1 { try await Task.sleep(for: .milliseconds(1)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // Ten batches of two runs; the first and the one read ahead at most.
        #expect(reads.current <= 4, "\(reads.current)")
    }
}
