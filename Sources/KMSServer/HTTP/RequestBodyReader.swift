import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// Reads a request body into memory, refusing it with `413` as soon as it
/// passes the limit: a chunked body is counted as it arrives, never buffered whole.
enum RequestBodyReader {
    /// `malformed` answers a body the HTTP layer cannot decode (a broken
    /// chunked encoding, a connection half-closed mid-body): the client's fault, so a `400` the route chooses,
    /// never the `500` an unmapped decoder error would become (found by fuzzing).
    static func read(_ request: Request, limit: Int, malformed: KMSError) async throws(KMSError) -> Data {
        var data = Data()
        do {
            for try await chunk in request.body {
                guard data.count + chunk.readableBytes <= limit else { throw KMSError.payloadTooLarge(limit: limit) }
                data.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as KMSError {
            throw error
        } catch is CancellationError {
            // The server is stopping (its grace period ran out), not the client's fault.
            throw KMSError(.serverBusy, "the server is shutting down; retry shortly", retryAfterSeconds: 1)
        } catch {
            throw malformed
        }
        return data
    }

    static let brokenBody = "the request body cannot be read: its chunked encoding is malformed or it was cut short"
}
