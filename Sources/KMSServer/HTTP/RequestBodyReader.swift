import Foundation
import Hummingbird
import KMSCore

/// Reads a request body into memory, refusing it with `413` as soon as it
/// passes the limit: a chunked body is counted as it arrives, never buffered whole.
enum RequestBodyReader {
    static func read(_ request: Request, limit: Int) async throws -> Data {
        var data = Data()
        for try await chunk in request.body {
            guard data.count + chunk.readableBytes <= limit else { throw KMSError.payloadTooLarge(limit: limit) }
            data.append(contentsOf: chunk.readableBytesView)
        }
        return data
    }
}
