import Foundation
import Synchronization

/// Thins out the log lines of allowlist refusals: a flood from a refused
/// address (or many) costs a few lines a second, not two per request. Each
/// line that is written says how many refusals were left unlogged since the
/// previous one, so the count is never lost. Memory is bounded.
final class RefusalLogSampler: Sendable {
    /// At most one line per address per `perAddress`, and `perSecond` in all.
    let perAddress: TimeInterval
    let perSecond: Int

    private struct State {
        var lastByAddress: [String: Date] = [:]
        var secondStart = Date.distantPast
        var inSecond = 0
        var suppressed = 0
    }

    private let state = Mutex(State())

    init(perAddress: TimeInterval = 10, perSecond: Int = 5) {
        self.perAddress = perAddress
        self.perSecond = perSecond
    }

    /// The number suppressed since the last line or the last call, which starts the count again
    /// (`LeftOutLogLines`).
    func takeLeftOut() -> Int {
        state.withLock { state in
            defer { state.suppressed = 0 }
            return state.suppressed
        }
    }

    /// Whether to log this refusal; when yes, the number suppressed before it.
    func admit(_ address: String, now: Date) -> Int? {
        state.withLock { state in
            // A clock stepped back counts as a new second (a review: the log went quiet for the step's length).
            if now.timeIntervalSince(state.secondStart) >= 1 || now < state.secondStart {
                state.secondStart = now
                state.inSecond = 0
            }
            let recent =
                state.lastByAddress[address].map { (0..<perAddress).contains(now.timeIntervalSince($0)) } ?? false
            guard state.inSecond < perSecond, !recent else {
                state.suppressed += 1
                return nil
            }
            if state.lastByAddress.count >= 10_000 { state.lastByAddress.removeAll(keepingCapacity: true) }
            state.lastByAddress[address] = now
            state.inSecond += 1
            defer { state.suppressed = 0 }
            return state.suppressed
        }
    }
}
