import KMSProtocol
import Synchronization

/// Hands out a session's seqs so that every one sent can still be accepted.
///
/// The server accepts a seq only within 1024 of the highest it has accepted
/// (protocol v1 sections 4 and 9). Seqs are taken in order, but answered in any
/// order: with one call slow (a resend after a closed connection, a slow
/// link) and many quick ones behind it, the quick ones would carry the
/// highest seq past the slow one's window, and the slow one would be refused
/// `replay_detected` — for a change, reported "outcome unknown" though it was
/// never done (a review of the library). So a seq is taken only while it is
/// within `span` of the oldest one still unanswered; past that the call waits
/// (cancellably) for the oldest to be answered.
final class SequenceWindow: Sendable {
    /// A seq, with the session it was taken in (`reset` starts a new one).
    struct Taken: Sendable {
        let seq: UInt64
        fileprivate let epoch: Int
    }

    private struct State {
        var epoch = 0
        var next: UInt64 = 1
        var outstanding = Set<UInt64>()
        /// The smallest of `outstanding` (meaningless while it is empty).
        var oldest: UInt64 = 1
        /// First come, first woken.
        var waiting: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextWaiter = 0

        var mayTake: Bool { outstanding.isEmpty || next - oldest < span }
        /// How many seqs may be taken now.
        var room: UInt64 { outstanding.isEmpty ? .max : span - min(span, next - oldest) }
        let span: UInt64
    }

    private let state: Mutex<State>

    /// `span` at most the server's window (tests make it small).
    init(span: UInt64 = SealedEnvelope.replayWindow) {
        state = Mutex(State(span: span))
    }

    /// Starts again at 1: a new session (no call is in flight while one is made).
    func reset() {
        let waiters = state.withLock { state in
            state.epoch += 1
            state.next = 1
            state.outstanding.removeAll()
            defer { state.waiting.removeAll() }
            return state.waiting.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// The next seq, once it is within the span of every unanswered one.
    func take() async throws -> Taken {
        while true {
            if let taken = state.withLock({ Self.takeNow(&$0) }) { return taken }
            let id = state.withLock { state in
                defer { state.nextWaiter += 1 }
                return state.nextWaiter
            }
            let woken = await waitCancellably { continuation in
                state.withLock { state -> Bool in
                    guard !state.mayTake, !Task.isCancelled else { return false }
                    state.waiting.append((id, continuation))
                    return true
                }
            } unpark: {
                state.withLock { state in
                    state.waiting.firstIndex { $0.id == id }.map { state.waiting.remove(at: $0).continuation }
                }
            }
            guard woken else { throw CancellationError() }
        }
    }

    /// `taken` was answered, or will never be: later seqs may go further. One
    /// taken before the last `reset` is ignored (its seq may be the new
    /// session's: the gate keeps that from happening, this keeps it harmless). As
    /// many waiters are woken as may take one now, the longest waiting first
    /// (waking all of them for each answer was quadratic under load).
    func release(_ taken: Taken) {
        let seq = taken.seq
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            guard taken.epoch == state.epoch, state.outstanding.remove(seq) != nil else { return [] }
            if seq == state.oldest, let oldest = state.outstanding.min() { state.oldest = oldest }
            let count = Int(min(UInt64(state.waiting.count), state.room))
            defer { state.waiting.removeFirst(count) }
            return state.waiting.prefix(count).map(\.continuation)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    private static func takeNow(_ state: inout State) -> Taken? {
        guard state.mayTake else { return nil }
        let seq = state.next
        if state.outstanding.isEmpty { state.oldest = seq }
        state.outstanding.insert(seq)
        state.next += 1
        return Taken(seq: seq, epoch: state.epoch)
    }
}
