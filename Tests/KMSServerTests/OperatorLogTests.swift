import KMSCore
import Testing

@testable import KMSServer

/// A full disk made one `request failed` line per storage `503` (a review: 488 in a burst). They are
/// thinned as refusals are: once a second per code, five a second in all, with the count left out.
@Suite struct OperatorLogTests {
    @Test func failuresThatNeedTheOperatorAreThinned() {
        let lines = LogCounter()
        let full = KMSError(
            .serverBusy, "the store cannot be written; try again later", detail: "No space left on device")
        let sampler = RefusalLogSampler(perAddress: 1, perSecond: 5)  // its own: other tests' 503s share the server's
        for index in 0..<20 { _ = full.response(requestId: "r\(index)", logger: lines.logger, failureLog: sampler) }
        #expect(lines.count("request failed") == 1, "\(lines.counts.withLock { $0 })")
        #expect(lines.values("request failed", "code") == ["server_busy"])
    }

    /// `suppressedKeys` names the first eight and the last eight left out (sixteen junk names sent first
    /// filled a first-16 list: the final review), whole (exempt from the audit's 256-byte cap, which kept
    /// two 64-byte names).
    @Test func leftOutNamesKeepTheFirstAndTheLast() {
        let names = LeftOutNames()
        for index in 0..<40 { names.note("phone", "keys:rotate " + String(repeating: "j", count: 60) + "\(index)") }
        names.note("phone", "keys:rotate secret")
        let kept = names.take("phone")
        #expect(kept.count == 16 && kept.last == "keys:rotate secret" && kept.first?.hasSuffix("j0") == true)
        #expect(kept[7].hasSuffix("j7") && kept[8].hasSuffix("j33"))
        #expect(names.take("phone").isEmpty)
        let event = AuditEvent("permission.denied", [("suppressedKeys", kept.joined(separator: ", "))])
        #expect(event.fields.first { $0.0 == "suppressedKeys" }?.1.contains("keys:rotate secret") == true)
    }
}
