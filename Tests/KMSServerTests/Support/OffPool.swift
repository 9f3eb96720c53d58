import Foundation

/// Runs blocking work — waiting for a child process, polling a socket — on a
/// thread of its own and awaits it.
///
/// Why: the cooperative pool has one thread per core (two on CI). A test that
/// blocks one of them while an in-process server, or another test's server,
/// needs it to answer stalls that server for as long as it blocks; a full
/// `swift test` once saw 20 s stalls from synchronous waits of this kind.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
