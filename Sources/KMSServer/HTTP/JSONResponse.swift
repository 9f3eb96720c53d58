import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// Plain JSON `200` responses.
enum JSONResponse {
    static func ok(_ value: some Encodable) throws(KMSError) -> Response {
        do {
            return raw(try WireJSON.encode(value))
        } catch {
            throw KMSError.internal("cannot encode a response")
        }
    }

    static func raw(_ body: Data) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: body)))
    }
}
