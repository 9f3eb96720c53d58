/// Lets many calls use the session at once, and session changes (token
/// rotation, re-establishment) happen alone: a change waits for in-flight
/// calls to finish and holds new ones back, so no request is ever sealed
/// under a token that is being replaced.
actor SessionGate {
    private var calls = 0
    private var changing = false
    private var waitingCalls: [CheckedContinuation<Void, Never>] = []
    private var waitingChanges: [CheckedContinuation<Void, Never>] = []

    func enterCall() async {
        while changing || !waitingChanges.isEmpty {
            await withCheckedContinuation { waitingCalls.append($0) }
        }
        calls += 1
    }

    func leaveCall() {
        calls -= 1
        if calls == 0 { handOverToChange() }
    }

    func enterChange() async {
        if !changing, calls == 0, waitingChanges.isEmpty {
            changing = true
            return
        }
        // `changing` is set for us by whoever resumes us.
        await withCheckedContinuation { waitingChanges.append($0) }
    }

    func leaveChange() {
        changing = false
        if !handOverToChange() {
            let waiting = waitingCalls
            waitingCalls.removeAll()
            for call in waiting { call.resume() }
        }
    }

    @discardableResult
    private func handOverToChange() -> Bool {
        guard !changing, calls == 0, !waitingChanges.isEmpty else { return false }
        changing = true
        waitingChanges.removeFirst().resume()
        return true
    }
}
