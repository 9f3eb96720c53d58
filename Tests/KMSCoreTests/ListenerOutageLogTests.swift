import KMSTestSupport
import Testing

@testable import KMSPostgres

/// The key-change listener's outage in its log: once at warning, then once per interval, and its end once (it
/// warned at each try, every second: an operator's walkthrough saw 3,600 lines for an hour's outage).
@Suite struct ListenerOutageLogTests {
    static let back = "key-change notifications are back; keys are cached again"

    @Test func anOutageIsSaidOnceThenEveryIntervalAndItsEndOnce() {
        let counter = LogCounter()
        let log = ListenerOutageLog(logger: counter.logger, repeatEvery: .seconds(3_600))
        log.listening()
        #expect(counter.count(Self.back) == 0, "a start without an outage says nothing")
        for _ in 0..<5 { log.failed("cannot listen", detail: "refused") }
        #expect(counter.count("cannot listen") == 1 && counter.values("cannot listen", "detail") == ["refused"])
        log.listening()
        log.listening()
        #expect(counter.count(Self.back) == 1 && counter.values(Self.back, "tries") == ["5"])
        // A new outage is said again.
        log.failed("lost", detail: "reset")
        #expect(counter.count("lost") == 1)

        let often = ListenerOutageLog(logger: counter.logger, repeatEvery: .zero)
        for _ in 0..<3 { often.failed("again", detail: "refused") }
        #expect(counter.count("again") == 3 && counter.values("again", "tries") == ["2", "3"])
    }
}
