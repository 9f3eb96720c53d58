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
        for index in 0..<20 { _ = full.response(requestId: "r\(index)", logger: lines.logger) }
        #expect(lines.count("request failed") == 1, "\(lines.counts.withLock { $0 })")
    }
}
