import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// Reads a request body into memory, refusing it with `413` as soon as it
/// passes the limit: a chunked body is counted as it arrives, never buffered whole. Bytes past a
/// body's first 64 KiB share the process's `BodyBudget` (`503` past it, or past the
/// sending host's quarter of it: `host` is its `perHostKey`).
enum RequestBodyReader {
    /// `malformed` answers a body the HTTP layer cannot decode (a broken
    /// chunked encoding, a connection half-closed mid-body): the client's fault, so a `400` the route chooses,
    /// never the `500` an unmapped decoder error would become (found by fuzzing).
    static func read(
        _ request: Request, limit: Int, host: @autoclosure () -> String, malformed: KMSError,
        budget: BodyBudget = .shared
    ) async throws(KMSError) -> Data {
        var data = Data()
        // A declared length's first bytes are allocated once, when the first of them arrives (not for a bare
        // head), instead of grown by doubling.
        let declared = request.headers[.contentLength].flatMap { Int($0) } ?? 0
        var counted = 0
        // Made for a body past its free bytes only: not on the path of every small request.
        var hostKey: String?
        defer { if counted > 0, let hostKey { budget.give(counted, host: hostKey) } }
        do {
            for try await chunk in request.body {
                let total = data.count + chunk.readableBytes
                guard total <= limit else { throw KMSError.payloadTooLarge(limit: limit) }
                let more = max(0, total - BodyBudget.freeBytes) - counted
                if more > 0 {
                    let key = hostKey ?? host()
                    hostKey = key
                    guard budget.take(more, limit: limit, host: key) else { throw busy }
                    counted += more
                }
                if data.isEmpty, declared > chunk.readableBytes {
                    data.reserveCapacity(min(declared, limit, BodyBudget.freeBytes))
                }
                data.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as KMSError {
            throw error
        } catch is HTTP1Semantics.PiecesTooSmall {
            // The route's own code for a body it cannot read (sealed routes: `invalid_envelope`, as OpenAPI
            // lists), with the reason.
            throw KMSError(malformed.code, HTTP1Semantics.PiecesTooSmall.message)
        } catch is CancellationError {
            // The server is stopping (its grace period ran out), not the client's fault.
            throw KMSError(.serverBusy, "the server is shutting down; retry shortly", retryAfterSeconds: 1)
        } catch {
            throw malformed
        }
        return data
    }

    static let brokenBody = "the request body cannot be read: its chunked encoding is malformed or it was cut short"

    static let busy = KMSError(
        .serverBusy, "the server is reading too many large request bodies at once; retry shortly",
        retryAfterSeconds: 1)

    /// Whether a `Content-Length` declares more than `limit`: a number past `Int` too (2^63 to
    /// 2^64 - 1, which NIO's parser takes), which went unanswered until the body timeout (a review).
    static func declaresMoreThan(_ limit: Int, _ contentLength: String?) -> Bool {
        guard let text = contentLength, !text.isEmpty else { return false }
        if let length = Int(text) { return length > limit }
        return text.isDecimalDigits
    }
}
