import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import NIOCore
import Testing

@testable import KMSServer

/// What a body costs the server's memory: bytes past each body's first 64 KiB share one budget, and a
/// body that would pass it is answered `503` (a review held 400 bodies of 1 MiB at once: 626 MB).
@Suite struct RequestBodyReaderTests {
    /// A body that arrives in `pieces` parts, as a socket's reads give it.
    private static func request(pieces: Int, of size: Int) -> Request {
        let head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/session/key-exchange")
        let parts = (0..<pieces).map { _ in ByteBuffer(repeating: 0x61, count: size) }
        return Request(head: head, body: RequestBody(asyncSequence: parts.async))
    }

    private static func request(bytes: Int, declared: String? = nil) -> Request {
        var head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/session/key-exchange")
        if let declared { head.headerFields[.contentLength] = declared }
        return Request(head: head, body: RequestBody(buffer: ByteBuffer(repeating: 0x61, count: bytes)))
    }

    @Test func largeBodiesShareOneBudgetAndSmallOnesNeverCount() async throws {
        let budget = BodyBudget(capacity: 400_000, bodies: 0)
        let malformed = KMSError(.badRequest, "broken")
        // One host holds a quarter at most; three more fill most of the rest.
        #expect(budget.take(100_000, limit: 1_000, host: "a") && !budget.take(1, limit: 1_000, host: "a"))
        #expect(budget.take(100_000, limit: 1_000, host: "b") && budget.take(100_000, limit: 1_000, host: "c"))
        #expect(budget.take(50_000, limit: 1_000, host: "d"))
        // A large body past what is left is refused, and nothing it read stays counted.
        await #expect(throws: KMSError.self) {
            _ = try await RequestBodyReader.read(
                Self.request(bytes: BodyBudget.freeBytes + 60_000), limit: 1 << 20, host: "e", malformed: malformed,
                budget: budget)
        }
        #expect(budget.inUse() == 350_000 && budget.inUse(by: "e") == 0)
        // A small body is read whatever the budget holds.
        let small = try await RequestBodyReader.read(
            Self.request(bytes: BodyBudget.freeBytes), limit: 1 << 20, host: "e", malformed: malformed, budget: budget)
        #expect(small.count == BodyBudget.freeBytes && budget.inUse() == 350_000)
        for (host, count) in [("a", 100_000), ("b", 100_000), ("c", 100_000), ("d", 50_000)] {
            budget.give(count, host: host)
        }
        let large = try await RequestBodyReader.read(
            Self.request(bytes: BodyBudget.freeBytes + 50_000, declared: "\(BodyBudget.freeBytes + 50_000)"),
            limit: 1 << 20, host: "e", malformed: malformed, budget: budget)
        #expect(large.count == BodyBudget.freeBytes + 50_000 && budget.inUse() == 0 && budget.inUse(by: "a") == 0)
    }

    /// A body read in pieces takes the budget as it goes, gives back what it took when it is refused, and
    /// one host is refused past its quarter while another host's body is read.
    @Test func aHostIsRefusedPastItsQuarterAndGivesBackWhatItTook() async throws {
        let budget = BodyBudget(capacity: 400_000, bodies: 0)
        let malformed = KMSError(.badRequest, "broken")
        #expect(budget.take(60_000, limit: 1_000, host: "a"))
        // 64 KiB free, then 40,000 more bytes taken as they arrive, past "a"'s quarter of 100,000.
        do {
            _ = try await RequestBodyReader.read(
                Self.request(pieces: 26, of: 4_096), limit: 1 << 20, host: "a", malformed: malformed, budget: budget)
            Issue.record("read past the host's quarter")
        } catch {
            #expect(error.code == .serverBusy)
        }
        #expect(budget.inUse(by: "a") == 60_000 && budget.inUse() == 60_000)
        let other = try await RequestBodyReader.read(
            Self.request(pieces: 26, of: 4_096), limit: 1 << 20, host: "b", malformed: malformed, budget: budget)
        #expect(other.count == 26 * 4_096 && budget.inUse() == 60_000 && budget.inUse(by: "b") == 0)
    }

    @Test func theRefusalIsABusyServer() async throws {
        let budget = BodyBudget(capacity: 0, bodies: 0)
        do {
            _ = try await RequestBodyReader.read(
                Self.request(bytes: BodyBudget.freeBytes + 1), limit: 1 << 20, host: "10.0.0.1",
                malformed: KMSError(.badRequest, "broken"), budget: budget)
            Issue.record("read past the budget")
        } catch {
            #expect(error.code == .serverBusy && error.retryAfterSeconds == 1)
        }
        // The capacity grows with the body limit: 64 bodies of the largest allowed.
        #expect(BodyBudget(capacity: 10).capacity(forBodiesOf: 1_000) == 64_000)
    }

    /// A `Content-Length` past `Int` (2^63 to 2^64 - 1, which NIO's parser takes) declares more than any
    /// limit: it went unanswered until the body timeout.
    @Test func aLengthPastIntIsTooLarge() {
        #expect(RequestBodyReader.declaresMoreThan(1_024, "9223372036854775808"))
        #expect(RequestBodyReader.declaresMoreThan(1_024, "18446744073709551615"))
        #expect(RequestBodyReader.declaresMoreThan(1_024, "1025"))
        #expect(!RequestBodyReader.declaresMoreThan(1_024, "1024"))
        #expect(!RequestBodyReader.declaresMoreThan(1_024, nil) && !RequestBodyReader.declaresMoreThan(1_024, ""))
        #expect(!RequestBodyReader.declaresMoreThan(1_024, "12a"))
    }
}
