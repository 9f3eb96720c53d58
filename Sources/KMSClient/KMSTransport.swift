import AsyncHTTPClient
public import Foundation
import KMSProtocol
import NIOCore
import NIOHTTP1

/// One HTTP exchange, as the client needs it. A protocol so that tests (and
/// unusual deployments) can put something between the client and the wire —
/// for example a transport that tampers with responses, to prove the client
/// refuses them.
public protocol KMSTransport: Sendable {
    func send(_ request: TransportRequest) async throws -> TransportResponse
}

/// One HTTP request. Its headers carry the client token: printed or dumped
/// (a custom transport that logs what it sends), the token is left out.
public struct TransportRequest: Sendable, CustomStringConvertible, CustomReflectable {
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

    /// The headers, with the token's value left out.
    private var shownHeaders: [String] {
        headers.map { name, value in
            name.lowercased() == EnvelopePlacement.tokenHeader.lowercased() ? "\(name): redacted" : "\(name): \(value)"
        }
    }

    public var description: String {
        "TransportRequest(\(method) \(target), headers: \(shownHeaders), body: \(body.map { "\($0.count) bytes" } ?? "none"))"
    }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "method": method, "target": target, "headers": shownHeaders,
                "body": body.map { "\($0.count) bytes" } ?? "none",
            ])
    }
}

public struct TransportResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data
    /// Whether this answers a second send of the request, made because the
    /// first one's connection closed before any answer: the first may have
    /// reached the server and taken effect, which a refusal of the second
    /// (`replay_detected`, a used pending session) then hides. The client
    /// turns such a refusal into "outcome unknown" (`KMSClientError`).
    public var resent: Bool

    public init(status: Int, headers: [(String, String)], body: Data, resent: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.resent = resent
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// No answer came to a request that may have reached the server: the
/// connection failed or closed after the request could have been written, a
/// resend failed after a first send whose connection closed, or the answer
/// stopped part-way or came too late. The request may have been carried
/// out. The client reads any transport error other than `TransportNeverSent`
/// (and a `KMSClientError`, passed on as it is) the same way.
public struct TransportNoAnswer: Error, CustomStringConvertible {
    public let underlying: any Error

    public init(_ underlying: any Error) {
        self.underlying = underlying
    }

    public var description: String { "\(underlying)" }
}

/// The request was never sent: no connection could be made to carry it. The transport's word on this
/// one request; a call the client repeated (after a refused `unknown_session`) is judged by its first
/// send, so the client throws it for a call only when no earlier send of that call reached the server.
/// A transport throws this only when it is sure; the client treats every
/// other failure of a change as "may have happened" (`TransportNoAnswer`).
public struct TransportNeverSent: Error, CustomStringConvertible {
    public let underlying: any Error

    public init(_ underlying: any Error) {
        self.underlying = underlying
    }

    public var description: String { "\(underlying)" }
}

/// The default transport: AsyncHTTPClient against a base URL.
public struct HTTPTransport: KMSTransport, CustomStringConvertible, CustomReflectable {
    public let baseURL: String
    public let client: HTTPClient
    public let timeout: TimeAmount
    /// `hasValidPort(baseURL)`, judged once, not at every send.
    private let portIsValid: Bool
    /// Responses larger than this are refused (the largest legitimate one is ~120 KB).
    public let maxResponseBytes = 4 << 20

    /// The default client: AsyncHTTPClient's shared one follows redirects, even
    /// https → http and to other hosts with the token and envelope headers
    /// and the body; a KMS never redirects, so a 3xx is refused instead.
    /// Otherwise it is the shared client's configuration (its pool), with a
    /// 30 s read timeout instead of 90, and idle connections dropped after 5 s:
    /// the server closes a connection that sends no request within its header
    /// deadline (`KMS_HEADER_TIMEOUT_MS`, 10 s by default), and a request
    /// written as that close arrives fails (see `send`).
    /// A connection that cannot be made is tried again with backoff until the call's deadline
    /// (30 s), which rides out a server's restart: what a program wants.
    public static let standard = makeClient(retryingConnections: true)

    /// The same, except that a connection that cannot be made fails the call at once (the CLI's:
    /// `kms keys list` against a stopped server waited 30 s in silence before saying "connection
    /// refused"). The call was never sent (`TransportNeverSent`).
    public static let interactive = makeClient(retryingConnections: false)

    private static func makeClient(retryingConnections: Bool) -> HTTPClient {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.redirectConfiguration = .disallow
        configuration.timeout.read = .seconds(30)  // a body that stops arriving (see `send`)
        configuration.connectionPool = .init(idleTimeout: .seconds(5))
        configuration.connectionPool.retryConnectionEstablishment = retryingConnections
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Printed or dumped, the base URL shows no password (a review: `dump` of a client printed it).
    public var description: String { "HTTPTransport(baseURL: \(KMSClientConfiguration.redacted(baseURL)))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": KMSClientConfiguration.redacted(baseURL), "timeout": timeout])
    }

    public init(baseURL: String, client: HTTPClient = HTTPTransport.standard, timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.client = client
        self.timeout = timeout
        portIsValid = Self.hasValidPort(baseURL)
    }

    /// Whether `baseURL`'s port, when it names one, is a TCP port: AsyncHTTPClient traps on one past
    /// 65535 (a review: `--url http://127.0.0.1:99999` crashed the CLI).
    public static func hasValidPort(_ baseURL: String) -> Bool {
        guard let port = URLComponents(string: baseURL)?.port else { return true }
        return (1...65_535).contains(port)
    }

    public func send(_ request: TransportRequest) async throws -> TransportResponse {
        guard portIsValid else {
            throw TransportNeverSent(KMSClientError.configuration("the server URL's port is not 1 to 65535"))
        }
        var outgoing = HTTPClientRequest(url: baseURL + request.target)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        // One deadline for the head *and* the body: AsyncHTTPClient's own deadline ends with the head,
        // and a server trickling its body would otherwise hold this call, and every call queued behind
        // a token rotation, as long as it likes. Checked as each part of the body arrives (a timer task
        // per request cost the client 10-30 us of CPU per call); a body that stops arriving altogether
        // meets the client's read timeout (30 s) instead.
        let deadline = NIODeadline.now() + timeout
        let response: HTTPClientResponse
        var resent = false
        do {
            do {
                response = try await client.execute(outgoing, deadline: deadline)
            } catch  where Self.isStaleConnection(error) {
                // The connection closed before any answer came: a pooled one the server closed idle as the
                // request was written, or a server that stopped (or dropped the connection) after reading
                // it. Sent once more: the server accepts a seq once, so a sealed request that did arrive is
                // refused `replay_detected`, and a key exchange's second send finds its pending session used.
                resent = true
                response = try await client.execute(outgoing, deadline: deadline)
            }
        } catch {
            // After a first send, or once a connection may have carried the request, the server may have
            // acted on it: said so, not passed on as "cannot reach the server" (a review made a rotation
            // happen that the CLI reported as never sent).
            if resent || !Self.neverSent(error) { throw TransportNoAnswer(error) }
            throw TransportNeverSent(error)
        }
        var body = ByteBuffer()
        do {
            for try await var part in response.body {
                guard NIODeadline.now() < deadline else { throw HTTPClientError.deadlineExceeded }
                guard body.readableBytes + part.readableBytes <= maxResponseBytes else {
                    throw NIOTooManyBytesError(maxBytes: maxResponseBytes)
                }
                body.writeBuffer(&part)
            }
        } catch {
            // The server answered: whatever it did, it did.
            throw TransportNoAnswer(error)
        }
        return TransportResponse(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: Data(body.readableBytesView), resent: resent)
    }

    /// Failures that happen before any connection carries the request: it
    /// was never sent. Anything else may have come after the request was
    /// written (`TransportNoAnswer`).
    public static func neverSent(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout || error == .getConnectionFromPoolTimeout || error == .invalidURL
                || error == .emptyHost || error == .emptyScheme
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        // Not EHOSTUNREACH or ENETUNREACH: Linux reports those on an established connection too, once
        // retransmissions fail, when the server may have the request (a review).
        if let error = error as? IOError { return [ECONNREFUSED, EADDRNOTAVAIL].contains(error.errnoCode) }
        // NIOPosix's error when every address failed to connect (this module does not import NIOPosix).
        return String(describing: type(of: error)) == "NIOConnectionError"
    }

    static func isStaleConnection(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError, error == .remoteConnectionClosed { return true }
        if let error = error as? ChannelError, case .ioOnClosedChannel = error { return true }
        return false
    }
}
