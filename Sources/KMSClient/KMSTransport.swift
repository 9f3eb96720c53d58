import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

/// One HTTP exchange, as the client needs it. A protocol so that tests (and
/// unusual deployments) can put something between the client and the wire —
/// for example a transport that tampers with responses, to prove the client
/// refuses them.
public protocol KMSTransport: Sendable {
    func send(_ request: TransportRequest) async throws -> TransportResponse
}

public struct TransportRequest: Sendable {
    public var method: String
    /// Path and query, exactly as bound into the AAD.
    public var target: String
    public var headers: [(String, String)]
    public var body: Data?

    public init(method: String, target: String, headers: [(String, String)], body: Data?) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }
}

public struct TransportResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data

    public init(status: Int, headers: [(String, String)], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// The default transport: AsyncHTTPClient against a base URL.
public struct HTTPTransport: KMSTransport {
    public let baseURL: String
    public let client: HTTPClient
    public let timeout: TimeAmount
    /// Responses larger than this are refused (the largest legitimate one is ~120 KB).
    public let maxResponseBytes = 4 << 20

    public init(baseURL: String, client: HTTPClient = .shared, timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.client = client
        self.timeout = timeout
    }

    public func send(_ request: TransportRequest) async throws -> TransportResponse {
        var outgoing = HTTPClientRequest(url: baseURL + request.target)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(outgoing, timeout: timeout)
        let body = try await response.body.collect(upTo: maxResponseBytes)
        return TransportResponse(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: Data(body.readableBytesView))
    }
}
