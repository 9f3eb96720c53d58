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
    private static func request(bytes: Int, declared: String? = nil) -> Request {
        var head = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/session/key-exchange")
        if let declared { head.headerFields[.contentLength] = declared }
        return Request(head: head, body: RequestBody(buffer: ByteBuffer(repeating: 0x61, count: bytes)))
    }

    @Test func largeBodiesShareOneBudgetAndSmallOnesNeverCount() async throws {
        let budget = BodyBudget(capacity: 100_000, bodies: 0)
        let malformed = KMSError(.badRequest, "broken")
        // A large body held by someone else leaves less than this one needs past its free bytes.
        #expect(budget.take(60_000, limit: 1_000))
        await #expect(throws: KMSError.self) {
            _ = try await RequestBodyReader.read(
                Self.request(bytes: BodyBudget.freeBytes + 50_000), limit: 1 << 20, malformed: malformed,
                budget: budget)
        }
        #expect(budget.inUse == 60_000)
        // A small body is read whatever the budget holds, and nothing it read stays counted.
        #expect(budget.take(40_000, limit: 1_000))
        let small = try await RequestBodyReader.read(
            Self.request(bytes: BodyBudget.freeBytes), limit: 1 << 20, malformed: malformed, budget: budget)
        #expect(small.count == BodyBudget.freeBytes && budget.inUse == 100_000)
        budget.give(100_000)
        let large = try await RequestBodyReader.read(
            Self.request(bytes: BodyBudget.freeBytes + 50_000, declared: "\(BodyBudget.freeBytes + 50_000)"),
            limit: 1 << 20, malformed: malformed, budget: budget)
        #expect(large.count == BodyBudget.freeBytes + 50_000 && budget.inUse == 0)
    }

    @Test func theRefusalIsABusyServer() async throws {
        let budget = BodyBudget(capacity: 0, bodies: 0)
        do {
            _ = try await RequestBodyReader.read(
                Self.request(bytes: BodyBudget.freeBytes + 1), limit: 1 << 20,
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
