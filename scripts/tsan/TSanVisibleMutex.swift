// Copied into every target by scripts/tsan-review.sh, in a throw-away worktree only: never built otherwise.
#if KMS_TSAN_LOCKS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A stand-in for Synchronization's `Mutex` that ThreadSanitizer can follow.
///
/// Why: on Linux `Mutex` locks by futex, which ThreadSanitizer does not model, so it reported every pair
/// of accesses under one lock as a race (2026-12-06's run: 58 reports, all of that kind) and could judge
/// nothing inside a lock. A module's own `Mutex` shadows the imported one, so this file, compiled into each
/// target with `-DKMS_TSAN_LOCKS`, moves every lock of the target onto a `pthread_mutex_t`, which it models.
/// Same API as far as this project uses it; a class, so copying a holder shares the lock (the real one is
/// `~Copyable`, so nothing copies one). Public, as the real one is: a test helper's public property holds one.
public final class Mutex<Value>: @unchecked Sendable {
    private var value: Value
    private let lock: UnsafeMutablePointer<pthread_mutex_t>

    public init(_ value: consuming Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }

    public func withLockIfAvailable<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result? {
        guard pthread_mutex_trylock(lock) == 0 else { return nil }
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
#endif
