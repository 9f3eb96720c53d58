import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import KMSClient
import KMSProtocol
import NIOCore
import Testing

/// The sealed channel under concurrency, over real HTTP connections.
@Suite struct ConcurrencyTests {
    /// 1,000 concurrent sealed requests of one session with distinct seqs all
    /// succeed; the same 1,000 again, concurrently, are all refused as replays.
    @Test func distinctSeqsPassAndDuplicatesFailUnderConcurrency() async throws {
        try await TestServer().run { client in
            let session = WireSession(client: client)
            try await session.establish()
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
            // A request queued for one of the 64 connections waits up to the connect timeout
            // (10 s by default), which a loaded 2-core machine running the whole suite can exceed.
            configuration.timeout.connect = .seconds(120)
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            let transport = HTTPTransport(
                baseURL: "http://127.0.0.1:\(client.port ?? 0)", client: http, timeout: .seconds(180))
            do {
                let (token, sessionId, key) = (session.token, session.sessionId, session.key)
                let envelopes = try (1...1_000).map { seq in
                    try ClientSeal.sealRequest(
                        Data(#"{"bytes":4}"#.utf8), method: "POST", target: "/crypto/random",
                        sessionId: session.sessionId,
                        seq: UInt64(seq), key: session.key)
                }
                for round in 0..<2 {
                    let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                        for envelope in envelopes {
                            group.addTask {
                                let response = try await transport.send(
                                    TransportRequest(
                                        method: "POST", target: "/crypto/random",
                                        headers: [("X-Client-Token", token), ("Content-Type", "application/json")],
                                        body: envelope.json))
                                _ = try ClientSeal.openResponse(
                                    response.body, sessionId: sessionId, expectedSeq: envelope.seq,
                                    status: response.status, key: key)
                                return response.status
                            }
                        }
                        return try await group.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
                    }
                    #expect(statuses == (round == 0 ? [200: 1_000] : [401: 1_000]), "round \(round): \(statuses)")
                }
            } catch {
                try? await http.shutdown()  // a client left running aborts the whole test process
                throw error
            }
            try await http.shutdown()
        }
    }

    /// A chunked body (no Content-Length) is counted as it arrives and refused past the limit.
    @Test func chunkedBodiesOverTheLimitAre413() async throws {
        try await TestServer(["KMS_MAX_BODY_BYTES": "4096"]).run { client in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(client.port ?? 0)/session/key-exchange")
            request.method = .POST
            request.headers.add(name: "X-Client-Token", value: WireSession.randomToken())
            let chunks = (0..<16).map { _ in ByteBuffer(repeating: UInt8(ascii: "a"), count: 1024) }
            request.body = .stream(chunks.async, length: .unknown)
            let response = try await http.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 413)
            let body = try await response.body.collect(upTo: 1 << 16)
            #expect(String(buffer: body).contains("payload_too_large"))
            try await http.shutdown()
        }
    }
}

extension Array where Element: Sendable {
    /// The elements as an async sequence (for streaming request bodies).
    fileprivate var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
