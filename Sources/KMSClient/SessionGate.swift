import Synchronization

/// Lets many calls use the session at once, and session changes (token
/// rotation, re-establishment) happen alone: a change waits for in-flight
/// calls to finish and holds new ones back, so no request is ever sealed
/// under a token that is being replaced.
///
/// The common case — a call while nothing changes — is one short lock, with
/// no suspension; only contended paths park a continuation. A task cancelled
/// while it waits stops waiting and throws `CancellationError` (a review: a
/// call held behind a key exchange to a server that stopped answering could
/// not be cancelled until that exchange timed out).
final class SessionGate: Sendable {
    private struct State {
        var calls = 0
        var changing = false
        var waitingCalls: [Int: CheckedContinuation<Bool, Never>] = [:]
        /// First come, first served.
        var waitingChanges: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextId = 0

        var callMayEnter: Bool { !changing && waitingChanges.isEmpty }

        mutating func newId() -> Int {
            defer { nextId += 1 }
            return nextId
        }
    }

    private let state = Mutex(State())

    /// Calls and changes parked behind a change (a call with no session waits to make one, as a
    /// change): tests wait for one to be there before cancelling it (without it, a cancel that lands
    /// before the call reaches the gate passes without testing the gate).
    var parked: Int { state.withLock { $0.waitingCalls.count + $0.waitingChanges.count } }

    func enterCall() async throws {
        while true {
            let entered = state.withLock { state -> Bool in
                guard state.callMayEnter else { return false }
                state.calls += 1
                return true
            }
            if entered { return }
            let id = state.withLock { $0.newId() }
            let woken = await waitCancellably { continuation in
                state.withLock { state -> Bool in
                    // Re-check under the lock: the change may have ended meanwhile.
                    guard !state.callMayEnter, !Task.isCancelled else { return false }
                    state.waitingCalls[id] = continuation
                    return true
                }
            } unpark: {
                state.withLock { $0.waitingCalls.removeValue(forKey: id) }
            }
            guard woken else { throw CancellationError() }
        }
    }

    func leaveCall() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            state.calls -= 1
            return Self.handOverToChange(&state)
        }
        next?.resume(returning: true)
    }

    /// Returns holding the change side; throws `CancellationError` (holding
    /// nothing) when the task is cancelled before its turn came.
    func enterChange() async throws {
        let id = state.withLock { $0.newId() }
        let entered = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let enterNow = state.withLock { state -> Bool? in
                    if Task.isCancelled { return false }
                    if !state.changing, state.calls == 0, state.waitingChanges.isEmpty {
                        state.changing = true
                        return true
                    }
                    // `changing` is set for us by whoever resumes us.
                    state.waitingChanges.append((id, continuation))
                    return nil
                }
                if let enterNow { continuation.resume(returning: enterNow) }
            }
        } onCancel: {
            // Still waiting: leave the queue (calls held back for this change alone may go on). Already
            // handed over: the change side is this task's, and it leaves it as usual.
            let (change, calls) = state.withLock { state in
                guard let index = state.waitingChanges.firstIndex(where: { $0.id == id }) else {
                    return (CheckedContinuation<Bool, Never>?.none, [CheckedContinuation<Bool, Never>]())
                }
                let change = state.waitingChanges.remove(at: index).continuation
                return (change, state.callMayEnter ? Self.takeWaitingCalls(&state) : [])
            }
            change?.resume(returning: false)
            for call in calls { call.resume(returning: true) }
        }
        guard entered else { throw CancellationError() }
    }

    func leaveChange() {
        let (change, calls) = state.withLock {
            state -> (CheckedContinuation<Bool, Never>?, [CheckedContinuation<Bool, Never>]) in
            state.changing = false
            if let next = Self.handOverToChange(&state) { return (next, []) }
            return (nil, Self.takeWaitingCalls(&state))
        }
        change?.resume(returning: true)
        for call in calls { call.resume(returning: true) }
    }

    private static func handOverToChange(_ state: inout State) -> CheckedContinuation<Bool, Never>? {
        guard !state.changing, state.calls == 0, !state.waitingChanges.isEmpty else { return nil }
        state.changing = true
        return state.waitingChanges.removeFirst().continuation
    }

    private static func takeWaitingCalls(_ state: inout State) -> [CheckedContinuation<Bool, Never>] {
        defer { state.waitingCalls.removeAll() }
        return Array(state.waitingCalls.values)
    }
}
