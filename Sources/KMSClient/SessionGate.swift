import Synchronization

/// Lets many calls use the session at once, and session changes (token
/// rotation, re-establishment) happen alone: a change waits for in-flight
/// calls to finish and holds new ones back, so no request is ever sealed
/// under a token that is being replaced.
///
/// The common case — a call while nothing changes — is one short lock, with
/// no suspension; only contended paths park a continuation.
final class SessionGate: Sendable {
    private struct State {
        var calls = 0
        var changing = false
        var waitingCalls: [CheckedContinuation<Void, Never>] = []
        var waitingChanges: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func enterCall() async {
        while true {
            let entered = state.withLock { state -> Bool in
                guard !state.changing, state.waitingChanges.isEmpty else { return false }
                state.calls += 1
                return true
            }
            if entered { return }
            await withCheckedContinuation { continuation in
                let parked = state.withLock { state -> Bool in
                    // Re-check under the lock: the change may have ended meanwhile.
                    guard state.changing || !state.waitingChanges.isEmpty else { return false }
                    state.waitingCalls.append(continuation)
                    return true
                }
                if !parked { continuation.resume() }
            }
        }
    }

    func leaveCall() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.calls -= 1
            return Self.handOverToChange(&state)
        }
        next?.resume()
    }

    func enterChange() async {
        await withCheckedContinuation { continuation in
            let enterNow = state.withLock { state -> Bool in
                if !state.changing, state.calls == 0, state.waitingChanges.isEmpty {
                    state.changing = true
                    return true
                }
                // `changing` is set for us by whoever resumes us.
                state.waitingChanges.append(continuation)
                return false
            }
            if enterNow { continuation.resume() }
        }
    }

    func leaveChange() {
        let (change, calls) = state.withLock {
            state -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) in
            state.changing = false
            if let next = Self.handOverToChange(&state) { return (next, []) }
            let calls = state.waitingCalls
            state.waitingCalls.removeAll()
            return (nil, calls)
        }
        change?.resume()
        for call in calls { call.resume() }
    }

    private static func handOverToChange(_ state: inout State) -> CheckedContinuation<Void, Never>? {
        guard !state.changing, state.calls == 0, !state.waitingChanges.isEmpty else { return nil }
        state.changing = true
        return state.waitingChanges.removeFirst()
    }
}
