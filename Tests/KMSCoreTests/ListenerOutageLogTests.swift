import KMSTestSupport
import Logging
import Testing

@testable import KMSPostgres

/// The key-change listener's outage in its log: once at warning, then once per interval, and its end once (it
/// warned at each try, every second: an operator's walkthrough saw 3,600 lines for an hour's outage).
@Suite struct ListenerOutageLogTests {
    static let back = "key-change notifications are back; keys are cached again"

    /// A logger that counts every level, debug included (`LogCounter`'s own stops at info).
    static func everything(_ counter: LogCounter) -> Logger {
        var logger = counter.logger
        logger.logLevel = .trace
        return logger
    }

    @Test func anOutageIsSaidOnceThenEveryIntervalAndItsEndOnce() {
        let counter = LogCounter()
        let quiet = LogCounter()
        var log = ListenerOutageLog(logger: counter.logger, repeatEvery: .seconds(3_600))
        log.listening()
        #expect(counter.count(Self.back) == 0, "a start without an outage says nothing")
        for _ in 0..<5 { log.failed("cannot listen", detail: "refused") }
        #expect(counter.count("cannot listen") == 1 && counter.values("cannot listen", "detail") == ["refused"])
        // The tries between are said at debug, not dropped.
        let debug = ListenerOutageLog(logger: Self.everything(quiet), repeatEvery: .seconds(3_600))
        for _ in 0..<5 { debug.failed("cannot listen", detail: "refused") }
        #expect(quiet.count("cannot listen") == 5)
        log.listening()
        log.listening()
        #expect(counter.count(Self.back) == 1 && counter.values(Self.back, "tries") == ["5"])
        // Lost again at once (a flapping connection): the same outage, no new warning or notice.
        log.failed("lost", detail: "reset")
        log.listening()
        #expect(counter.count("lost") == 0 && counter.count(Self.back) == 1)

        // With every try past the interval: each warned, with the outage's count, and each return said.
        log = ListenerOutageLog(logger: counter.logger, repeatEvery: .zero)
        for _ in 0..<3 { log.failed("again", detail: "refused") }
        #expect(counter.count("again") == 3 && counter.values("again", "tries") == ["2", "3"])
        log.listening()
        #expect(counter.count(Self.back) == 2)
        // Back long enough (here, any time at all): a new outage, said from its first try.
        log.failed("new", detail: "refused")
        #expect(counter.count("new") == 1 && counter.values("new", "tries").isEmpty)
    }
}
