import Foundation
import KMSClient
import Testing

/// Issue 17: slow and greedy clients cannot hold connections open, while
/// well-behaved clients keep being served.
@Suite(.serialized) struct SlowClientTests {
    static func healthy(_ server: ServeProcess) async throws -> Bool {
        let response = try await HTTPTransport(baseURL: server.url).send(
            TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        return response.status == 200
    }

    /// A series' value in the server's `/metrics` (0 when absent), read on a connection of its own.
    static func metric(_ port: Int, _ series: String) async throws -> Int {
        let connection = try RawConnection(port: port)
        connection.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let text = try await connection.readAll(within: 5)
        let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Int($0.dropFirst(series.count + 1)) } ?? 0
    }

    static func closedConnections(_ server: ServeProcess, _ reason: String, door: String = "native") async throws
        -> Int
    {
        try await metric(server.port, #"kms_connections_closed_total{door="\#(door)",reason="\#(reason)"}"#)
    }

    @Test func stalledHeadsAndTricklersAreClosedWhileHealthzAnswers() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "1000"])
        // 100, not 300: this test runs beside a hundred others in one process, and the suite's peak of
        // open descriptors (1,345-1,386) stood where swift-corelibs-foundation's `Process.run()` crashed
        // twice in a memcpy on 2026-12-05, about 1,356 open; 100 still outnumber the other clients.
        let stalled = try (0..<100).map { _ in try RawConnection(port: server.port) }
        for connection in stalled { connection.send("GET /heal") }
        #expect(try await Self.healthy(server))
        let trickler = try RawConnection(port: server.port)
        var sentAll = true
        for byte in "GET /healthz HTTP/1.1\r\nHost: x\r\n" {
            guard trickler.send(String(byte)) else {
                sentAll = false
                break
            }
            try await Task.sleep(for: .milliseconds(150))
        }
        let tricklerClosed = sentAll ? try await trickler.isClosed(within: 3) : true
        #expect(tricklerClosed, "a trickling client outlived the header deadline")
        var closed = 0
        for connection in stalled { if try await connection.isClosed(within: 5) { closed += 1 } }
        #expect(closed == stalled.count, "\(closed) of \(stalled.count) stalled connections closed")
        #expect(try await Self.healthy(server))
        // Counted, so a slow-client flood leaves a trace (an observability review: none did).
        let counted = try await Self.closedConnections(server, "head")
        #expect(counted >= stalled.count + 1, "\(counted)")
    }

    /// Pipelined requests are all answered: the header deadline runs only
    /// while no request is being handled.
    @Test func pipelinedRequestsAreAnswered() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "1000"])
        let connection = try RawConnection(port: server.port)
        let request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(connection.send(request + request + request))
        let answers = try await connection.readAll(within: 3)
        #expect(answers.components(separatedBy: "HTTP/1.1 200").count - 1 == 3, "\(answers)")
    }

    /// A client pipelining far ahead of its answers gets `ConnectionGuard.maxPipelined` of them, the last
    /// saying `Connection: close`, and then the close: nothing after is read or answered (a probe's
    /// connections sending 64 KB of tiny requests a write, never reading, grew the server by gigabytes).
    @Test func pipeliningFarAheadEndsTheConnection() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "60000"])
        let connection = try RawConnection(port: server.port)
        #expect(connection.send(String(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 2_000)))
        let answers = try await connection.readAll(within: 10)
        let count = answers.components(separatedBy: "HTTP/1.1 200").count - 1
        #expect(count == 16, "\(count) answers")
        let last = answers.components(separatedBy: "HTTP/1.1 200").last ?? ""
        #expect(last.lowercased().contains("connection: close"), "\(last)")
        #expect(try await connection.isClosed(within: 1))
        #expect(try await Self.healthy(server))
    }

    /// The header deadline moves with each answer (one timer per connection checks it, issue 18):
    /// a connection that keeps asking outlives the header timeout, and once it
    /// falls silent it is closed about one header timeout after its last answer, not later.
    /// The timeout is 3 s, the requests 400 ms apart for 4 s: with a 1 s timeout, a machine loaded by two
    /// busy loops and the suite stretched a 400 ms sleep past it, and the server rightly closed the idle
    /// connection mid-test (a busy-cores `.ci/run` on 2026-12-06).
    @Test func aKeepAliveConnectionIsClosedOneHeaderTimeoutAfterItsLastAnswer() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "3000"])
        let connection = try RawConnection(port: server.port)
        var lastAnswer = ContinuousClock.now
        for request in 0..<11 {
            if request > 0 { try await Task.sleep(for: .milliseconds(400)) }
            #expect(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
            let answer = try await connection.read(until: "\"ok\"}", within: 3)
            #expect(answer.contains("HTTP/1.1 200"), "\(answer)")
            lastAnswer = ContinuousClock.now
        }
        #expect(try await connection.isClosed(within: 10), "an idle keep-alive connection outlived the header deadline")
        // Counted from the last answer, not from after a sleep that a loaded machine may stretch: the
        // deadline runs from when that answer was written, one header timeout (3 s) before the close.
        let waited = ContinuousClock.now - lastAnswer
        // The lower bound only says "not at once": `lastAnswer` is read when this task resumes, which a loaded
        // machine's pool can delay by seconds after the bytes came (a review of the suite's timing).
        #expect(waited > .milliseconds(500) && waited < .seconds(9), "closed \(waited) after the last answer")
        #expect(try await Self.healthy(server))
        // Counted as an idle close, not as a late head (the slow-client flood's count stays clean).
        #expect(try await Self.closedConnections(server, "idle") >= 1)
        #expect(try await Self.closedConnections(server, "head") == 0)
    }

    /// A review finding: after a request that asks to switch protocols, NIO's decoder stops parsing
    /// and keeps every later byte in memory, and the connection stayed open until a deadline (here a
    /// minute). It is answered, with `Connection: close`, and closed after its answer.
    @Test func aRequestToSwitchProtocolsIsTheConnectionsLast() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "60000"])
        // Each with its status as docs/api.md gives it (a review: the page said 404 for the authority form).
        let requests = [
            ("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "200"),
            ("CONNECT x:1 HTTP/1.1\r\nHost: x:1\r\n\r\n", "400"),
            ("CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
        ]
        for (request, status) in requests {
            let connection = try RawConnection(port: server.port)
            #expect(connection.send(request + String(repeating: "x", count: 65_536)))
            let answer = try await connection.readAll(within: 5)
            #expect(
                answer.hasPrefix("HTTP/1.1 \(status) ") && answer.lowercased().contains("connection: close"),
                "\(answer)")
            #expect(try await connection.isClosed(within: 1), "\(request)")
        }
        #expect(try await Self.healthy(server))
    }

    /// A client that pipelines requests for large answers and never reads them: once the
    /// answers stop draining for the idle timeout, the connection is closed (it was held for
    /// ever, and with it a graceful shutdown, by a probe). Seen from the client, which reads
    /// only afterwards: it gets a part of the answers, then the end, not all of them.
    @Test func answersNeverReadDoNotHoldTheConnection() async throws {
        let server = try await ServeProcess(environment: ["KMS_IDLE_TIMEOUT_MS": "1000"])
        let single = try await HTTPTransport(baseURL: server.url).send(
            TransportRequest(method: "GET", target: "/openapi.json", headers: [], body: nil))
        let requests = 200
        let connection = try RawConnection(port: server.port, receiveBuffer: 4096)
        #expect(connection.send(String(repeating: "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n", count: requests)))
        try await Task.sleep(for: .seconds(4))
        let received = try await connection.countAll(within: 20)
        #expect(
            received < single.body.count * requests,
            "\(received) bytes: every answer arrived, so the stalled connection was kept")
        #expect(try await Self.healthy(server))
        #expect(try await server.stop() == 0)
    }

    @Test func aStalledBodyIsClosed() async throws {
        let server = try await ServeProcess(environment: ["KMS_BODY_TIMEOUT_MS": "1000"])
        for target in ["/session/key-exchange", "/crypto/encrypt"] {
            let connection = try RawConnection(port: server.port)
            connection.send("POST \(target) HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
            #expect(try await connection.isClosed(within: 5), "\(target)")
        }
        #expect(try await Self.healthy(server))
    }

    /// A chunked body whose chunk size is not hex, or one cut short by a half-close, is the
    /// client's fault: 400, never 500 (found by fuzzing). A body cut short may also just see the
    /// connection closed: when the end of stream arrives with the head, the server may close first.
    /// (A server process of its own: a test process's blocked threads cannot delay its answers.)
    @Test func aMalformedChunkedBodyIs400() async throws {
        let server = try await ServeProcess()
        for (target, code) in [("/session/key-exchange", "bad_request"), ("/crypto/encrypt", "invalid_envelope")] {
            for (body, cutShort) in [("zz\r\n", false), ("5\r\nhel", true)] {
                let connection = try RawConnection(port: server.port)
                connection.send(
                    "POST \(target) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        + body)
                if cutShort { connection.finishSending() }
                let answer = try await connection.readAll(within: 20)
                let refused = answer.hasPrefix("HTTP/1.1 400") && answer.contains("\"\(code)\"")
                #expect(refused || (cutShort && answer.isEmpty), "\(target) \(body): \(answer)")
            }
        }
        #expect(try await Self.healthy(server))
    }

    /// The AWS door has the same bounds: a connection that never finishes its TLS handshake, or
    /// its request head, is closed at the header deadline.
    @Test func theAWSDoorClosesStalledConnectionsToo() async throws {
        let awsPort = TestPorts.take()
        let server = try await ServeProcess(environment: [
            "KMS_HEADER_TIMEOUT_MS": "1000", "KMS_AWS_PORT": "\(awsPort)", "KMS_AWS_HOST": "127.0.0.1",
        ])
        var silent: RawConnection?
        for _ in 0..<100 where silent == nil {
            silent = try? RawConnection(port: awsPort)
            if silent == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let handshake = try #require(silent, "the AWS door never listened: \(server.logText)")
        let partial = try RawConnection(port: awsPort)
        partial.send("\u{16}\u{03}\u{01}")  // the start of a TLS record, and no more
        #expect(try await handshake.isClosed(within: 5))
        #expect(try await partial.isClosed(within: 5))
        #expect(try await Self.healthy(server))
    }

    /// Bytes that are not HTTP/1.1 get each door's JSON error, not an empty 400; after a pipelined
    /// request the answers keep their order.
    @Test func requestsThatAreNotHTTPGetAJSON400() async throws {
        let awsPort = TestPorts.take()
        let server = try await ServeProcess(environment: [
            "KMS_AWS_PORT": "\(awsPort)", "KMS_AWS_HOST": "127.0.0.1", "KMS_AWS_ALLOW_PLAIN_HTTP": "true",
        ])
        for request in [
            "FOO /keys HTTP/1.1\r\nHost: x\r\n\r\n", "POST /crypto/encrypt HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            // The decoder reports an unsupported version twice: still one answer.
            "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
            // RFC 9112 section 3.2 (a probe: accepted): HTTP/1.1 without Host, and two Hosts.
            "GET /healthz HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            let connection = try RawConnection(port: server.port)
            connection.send(request)
            let answer = try await connection.readAll(within: 5)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(request): \(answer)")
            #expect(
                answer.contains(#""code":"bad_request""#) && answer.lowercased().contains("x-request-id"), "\(answer)")
            #expect(answer.components(separatedBy: "HTTP/1.1 400 ").count == 2, "one answer: \(answer)")
        }
        // A load balancer's `OPTIONS *` is a path the server does not have, and an absolute target names
        // its Host whether or not the default port is written.
        for (request, status) in [
            ("OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "404"),
            ("GET http://x/healthz HTTP/1.1\r\nHost: X:80\r\nConnection: close\r\n\r\n", "200"),
        ] {
            let connection = try RawConnection(port: server.port)
            connection.send(request)
            let answer = try await connection.readAll(within: 5)
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(request): \(answer)")
        }
        // HTTP/1.0 has no Host to require.
        let old = try RawConnection(port: server.port)
        old.send("GET /healthz HTTP/1.0\r\n\r\n")
        let answered = try await old.readAll(within: 5)
        #expect(answered.hasPrefix("HTTP/1.1 200"), "\(answered)")
        let pipelined = try RawConnection(port: server.port)
        pipelined.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nFOO / HTTP/1.1\r\n\r\n")
        let both = try await pipelined.readAll(within: 5)
        // The door's JSON 400 after the answer it followed (it was Hummingbird's empty one, an edge probe).
        let second = both.components(separatedBy: "HTTP/1.1 400 ").last ?? ""
        #expect(both.hasPrefix("HTTP/1.1 200") && second.contains(#""code":"bad_request""#), "\(both)")
        var aws: RawConnection?
        for _ in 0..<100 where aws == nil {
            aws = try? RawConnection(port: awsPort)
            if aws == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let door = try #require(aws, "the AWS door never listened")
        door.send("FOO / HTTP/1.1\r\nHost: x\r\n\r\n")
        let refused = try await door.readAll(within: 5)
        #expect(refused.hasPrefix("HTTP/1.1 400") && refused.contains("SerializationException"), "\(refused)")
        // Each answered and counted by its door (an observability review: none was counted).
        #expect(try await Self.closedConnections(server, "malformed") == 8)
        #expect(try await Self.closedConnections(server, "malformed", door: "aws") == 1)
    }

    /// HTTP/1's rules on closing, which are lost once a request becomes an `HTTPRequest` (an edge
    /// probe's HTTP/1.0 client and `Connection: Close` were each held until a timeout): the
    /// connection closes after the answer to an HTTP/1.0 request without `keep-alive`, or to one
    /// that asks to close in any spelling, and nothing pipelined after that one is answered or
    /// refused; an HTTP/1.0 client that asked to keep it is told so, and kept.
    @Test func connectionsCloseWhenHTTP1SaysSo() async throws {
        let server = try await ServeProcess(environment: ["KMS_HEADER_TIMEOUT_MS": "60000"])
        let healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for request in [
            "GET /healthz HTTP/1.0\r\n\r\n", "GET /healthz HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" + healthz,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n\r\n" + healthz,
        ] {
            let connection = try RawConnection(port: server.port)
            #expect(connection.send(request))
            let answer = try await connection.readAll(within: 5)
            #expect(answer.hasPrefix("HTTP/1.1 200") && answer.lowercased().contains("connection: close"), "\(answer)")
            #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "one answer only: \(answer)")
        }
        let kept = try RawConnection(port: server.port)
        for _ in 0..<2 {
            #expect(kept.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
            let answer = try await kept.read(until: "\"ok\"}", within: 5)
            #expect(
                answer.hasPrefix("HTTP/1.1 200") && answer.lowercased().contains("connection: keep-alive"), "\(answer)")
        }
        #expect(try await !kept.isClosed(within: 0.5))
    }

    /// `Expect: 100-continue` is answered `100 Continue` before the body is sent (the client
    /// waited its own timeout, curl 1 s), but not for a body past the limit, which gets its `413`
    /// at once; a transfer coding other than `chunked` is refused with the door's JSON `400`
    /// (it was read as if the body were plain), after any answer pipelined before it.
    @Test func expectContinueAndTransferCodingsAreHandled() async throws {
        let server = try await ServeProcess(environment: ["KMS_MAX_BODY_BYTES": "4096"])
        let post = "POST /session/key-exchange HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        let waiting = try RawConnection(port: server.port)
        #expect(waiting.send(post + "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n"))
        let interim = try await waiting.read(until: "\r\n\r\n", within: 5)
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n", "\(interim)")
        #expect(waiting.send("{}"))
        let final = try await waiting.read(until: "}}", within: 5)
        #expect(final.hasPrefix("HTTP/1.1 4") && final.contains(#""code":"#), "\(final)")
        let large = try RawConnection(port: server.port)
        #expect(large.send(post + "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"))
        let refused = try await large.read(until: "}}", within: 5)
        #expect(refused.hasPrefix("HTTP/1.1 413") && refused.contains("payload_too_large"), "\(refused)")
        for prefix in ["", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] {
            let coded = try RawConnection(port: server.port)
            #expect(coded.send(prefix + post + "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
            let answer = try await coded.readAll(within: 5)
            #expect(answer.hasPrefix(prefix.isEmpty ? "HTTP/1.1 400" : "HTTP/1.1 200"), "\(answer)")
            let last = answer.components(separatedBy: "HTTP/1.1 400 ").last ?? ""
            #expect(last.contains(#""code":"bad_request""#) && last.contains("transfer coding"), "\(answer)")
        }
        // A Kelvin sign for the k of `chunked` is refused. NIO's parser refuses it before HTTP1Semantics'
        // comparison (which `lowercased()` made pass; HTTP1SemanticsTests reaches it in an EmbeddedChannel):
        // this checks the server's answer, not that comparison.
        let kelvin = try RawConnection(port: server.port)
        #expect(kelvin.send(post + "Transfer-Encoding: chun\u{212A}ed\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
        let kelvinAnswer = try await kelvin.readAll(within: 5)
        #expect(kelvinAnswer.hasPrefix("HTTP/1.1 400"), "\(kelvinAnswer)")
        #expect(try await Self.healthy(server))
    }

    /// A review sent bodies in 1-byte chunks (6 bytes on the wire for each byte of body): 1 MiB cost 0.95 s
    /// of CPU, on any route, from any host. Such a body is refused once past the allowance, by the route
    /// that reads it with the reason, and the connection closes after its answer without reading more; a
    /// route that answered without reading its body (its rest drained) closes the connection at once.
    @Test func aBodyInTinyChunksIsRefusedAndClosed() async throws {
        let server = try await ServeProcess()
        let tiny = String(repeating: "1\r\na\r\n", count: 2_000)
        let token = String(repeating: "t", count: 40)
        // Each route answers with its own code for a body it cannot read (as OpenAPI lists it), with the reason.
        for (path, code) in [("/session/key-exchange", "bad_request"), ("/crypto/encrypt", "invalid_envelope")] {
            let connection = try RawConnection(port: server.port)
            #expect(
                connection.send(
                    "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "X-Client-Token: \(token)\r\nTransfer-Encoding: chunked\r\n\r\n" + tiny))
            let answer = try await connection.read(until: "}}", within: 5)
            #expect(
                answer.hasPrefix("HTTP/1.1 400") && answer.contains(code) && answer.contains("pieces too small"),
                "\(path): \(answer)")
            #expect(try await connection.isClosed(within: 5), "\(path)")
        }
        let drained = try RawConnection(port: server.port)
        #expect(drained.send("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + tiny))
        let other = try await drained.read(until: "}", within: 5)
        #expect(other.hasPrefix("HTTP/1.1 "), "\(other)")
        #expect(try await drained.isClosed(within: 5))
        // The same bytes in one chunk are read as any body is.
        let whole = try RawConnection(port: server.port)
        #expect(
            whole.send(
                "POST /session/key-exchange HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "X-Client-Token: \(token)\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"
                    + String(repeating: "a", count: 2_000) + "\r\n0\r\n\r\n"))
        let read = try await whole.read(until: "}}", within: 5)
        #expect(read.hasPrefix("HTTP/1.1 400") && !read.contains("pieces too small"), "\(read)")
        #expect(try await Self.healthy(server))
    }

    /// A review: after a refused request, input was thrown away but still read, at the link's speed,
    /// while answers pipelined before it waited for a client that does not read them (and NIO kept
    /// the method of every request head it parsed: 2 MB of memory per MB sent). It is no longer
    /// read: what the kernel takes is what the two sockets' buffers hold.
    @Test func inputAfterARefusalIsNotRead() async throws {
        let server = try await ServeProcess()
        // Answers that fill the two sockets' buffers, never read. The server reads on only while its
        // queue of requests is short when the answers stall, which depends on the buffers' sizes:
        // several counts, so that some stall with a short queue.
        for count in stride(from: 10, through: 24, by: 2) {
            let connection = try RawConnection(port: server.port, receiveBuffer: 4096)
            #expect(connection.send(String(repeating: "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n", count: count)))
            try await Task.sleep(for: .seconds(1))
            connection.send(
                "POST /session/key-exchange HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\nFFFFFFF\r\n")
            let accepted = try await connection.sendWhileAccepted(total: 256 << 20, within: 2)
            #expect(accepted < 64 << 20, "\(count) requests: \(accepted) bytes taken after the refusal")
        }
        #expect(try await Self.healthy(server))
    }

    #if os(Linux)  // connects from 127.0.0.2-5, which only Linux answers without setup
        /// A host connected directly holds at most its share of the cap (a flood probe filled all of
        /// it from a host off the allowlist): a quarter per allowlisted address, a tenth for every host
        /// off the allowlist together, whose connections also close after their one answer (a `403`).
        /// Generous deadlines: nothing here waits for them unless the server is wrong or slow.
        @Test func oneHostHoldsOnlyItsShareOfTheCap() async throws {
            let server = try await ServeProcess(environment: [
                "KMS_MAX_CONNECTIONS": "40", "KMS_TRUSTED_PROXIES": "", "KMS_HEADER_TIMEOUT_MS": "300000",
                "KMS_IDLE_TIMEOUT_MS": "300000", "KMS_BODY_TIMEOUT_MS": "300000",
                "KMS_WHITELIST": "127.0.0.1/32,127.0.0.4/32,127.0.0.5/32",
            ])
            let request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            let strangers = try await Self.settle(
                (0..<20).map { _ in try RawConnection(port: server.port, source: "127.0.0.2") }, open: 4)
            let greedy = try await Self.settle(
                (0..<15).map { _ in try RawConnection(port: server.port, source: "127.0.0.5") }, open: 10)
            #expect(strangers.count == 4, "\(strangers.count) of 20 connections open from a host off the allowlist")
            #expect(greedy.count == 10, "\(greedy.count) of 15 connections open from one allowlisted host")

            // Another allowlisted host still gets in; another host off the allowlist finds the strangers' share full.
            let other = try RawConnection(port: server.port, source: "127.0.0.4")
            other.send(request)
            let answer = try await other.read(until: "\r\n\r\n", within: 20)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(40))")
            #expect(try await RawConnection(port: server.port, source: "127.0.0.3").isClosed(within: 20))

            // Refused before its body came, a stranger still reads its 403 (`Connection: close`), not
            // invited by a `100 Continue` to send the body first; the connection waits a moment for the
            // body, then closes.
            let sending = strangers[1]
            sending.send(
                "POST /session/key-exchange HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
            let early = try await sending.read(until: "}", within: 20)
            #expect(early.hasPrefix("HTTP/1.1 403") && early.contains("address_not_allowed"), "\(early.prefix(80))")
            #expect(early.lowercased().contains("connection: close"), "\(early.prefix(300))")
            sending.send("0123456789")
            #expect(try await sending.isClosed(within: 20))
            // One that never sends the body it announced keeps its place seconds, not the body timeout (a
            // probe held one 30 s): closed within the stranger's linger, well inside this 300 s timeout.
            let silent = strangers[2]
            silent.send("POST /crypto/encrypt HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            #expect(try await silent.isClosed(within: 60), "a stranger held its place waiting for its body")
            // Bytes that are not HTTP after a stranger's request: its 403 said `Connection: close`, and nothing follows it.
            let garbling = strangers[3]
            garbling.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nFOO / HTTP/1.1\r\n\r\n")
            let only = try await garbling.readAll(within: 20)
            #expect(only.hasPrefix("HTTP/1.1 403") && only.components(separatedBy: "HTTP/1.1 ").count == 2, "\(only)")

            // Its place went back to the share: a new stranger connection is admitted (open past a second).
            var admitted = false
            for _ in 0..<10 where !admitted {
                admitted = try await !RawConnection(port: server.port, source: "127.0.0.3").isClosed(within: 1)
            }
            #expect(admitted, "a place in the strangers' share came back")

            // A stranger's body after its 403 is drained a few kilobytes at most, not at the link's speed for
            // the whole linger (a probe: a body announced as a terabyte was read at gigabytes a second, 0.65 s
            // of CPU a connection).
            var pouring: RawConnection?
            for _ in 0..<10 where pouring == nil {
                let candidate = try RawConnection(port: server.port, source: "127.0.0.3")
                if try await !candidate.isClosed(within: 1) { pouring = candidate }
            }
            let pour = try #require(pouring, "no place for a stranger")
            pour.send("POST /session/key-exchange HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
            let taken = try await pour.sendWhileAccepted(total: 1 << 30, within: 2)
            #expect(taken < 64 << 20, "\(taken) bytes of a stranger's body taken after its 403")
        }

        /// The AWS door keeps its own count with the same shares, under TLS too: a stranger's raw
        /// connections past the strangers' tenth are closed before any handshake, an allowlisted host
        /// keeps its quarter. On plain HTTP a stranger reads `403 AccessDeniedException` with
        /// `Connection: close`, and its connection closes after that one answer.
        @Test func theAWSDoorGivesEachHostItsShareToo() async throws {
            let tlsPort = TestPorts.take()
            let tls = try await ServeProcess(environment: [
                "KMS_MAX_CONNECTIONS": "40", "KMS_TRUSTED_PROXIES": "", "KMS_HEADER_TIMEOUT_MS": "300000",
                "KMS_IDLE_TIMEOUT_MS": "300000", "KMS_WHITELIST": "127.0.0.1/32,127.0.0.5/32",
                "KMS_AWS_PORT": "\(tlsPort)", "KMS_AWS_HOST": "127.0.0.1",
            ])
            try await Self.waitForListener(tlsPort, server: tls)
            let strangers = try await Self.settle(
                (0..<20).map { _ in try RawConnection(port: tlsPort, source: "127.0.0.2") }, open: 4)
            let greedy = try await Self.settle(
                (0..<15).map { _ in try RawConnection(port: tlsPort, source: "127.0.0.5") }, open: 10)
            #expect(strangers.count == 4, "\(strangers.count) of 20 stranger connections open on the TLS door")
            #expect(greedy.count == 10, "\(greedy.count) of 15 connections open from one allowlisted host")

            let plainPort = TestPorts.take()
            let plain = try await ServeProcess(environment: [
                "KMS_TRUSTED_PROXIES": "", "KMS_WHITELIST": "127.0.0.1/32", "KMS_AWS_PORT": "\(plainPort)",
                "KMS_AWS_HOST": "127.0.0.1", "KMS_AWS_ALLOW_PLAIN_HTTP": "true",
            ])
            try await Self.waitForListener(plainPort, server: plain)
            let stranger = try RawConnection(port: plainPort, source: "127.0.0.2")
            stranger.send(
                "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2\r\n\r\n{}")
            let answer = try await stranger.readAll(within: 20)
            #expect(
                answer.hasPrefix("HTTP/1.1 403") && answer.contains("AccessDeniedException"), "\(answer.prefix(80))")
            #expect(answer.lowercased().contains("connection: close"), "\(answer.prefix(300))")
            #expect(try await stranger.isClosed(within: 5), "a stranger's connection stayed open after its 403")
        }

        /// Waits (up to 10 s) until `port` accepts a connection: the AWS door listens a moment after the native one.
        static func waitForListener(_ port: Int, server: ServeProcess) async throws {
            for _ in 0..<100 {
                if (try? RawConnection(port: port)) != nil { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("the AWS door never listened: \(server.logText)")
        }

        /// The connections still open once the server has closed those past a share: waits (up to
        /// 30 s) until no more than `open` remain, then a moment more for any it should not have closed.
        static func settle(_ connections: [RawConnection], open expected: Int) async throws -> [RawConnection] {
            var open = connections
            let deadline = ContinuousClock.now + .seconds(30)
            repeat {
                var still: [RawConnection] = []
                for connection in open where try await !connection.isClosed(within: 0.02) { still.append(connection) }
                open = still
            } while open.count > expected && ContinuousClock.now < deadline
            try await Task.sleep(for: .milliseconds(500))
            var still: [RawConnection] = []
            for connection in open where try await !connection.isClosed(within: 0.02) { still.append(connection) }
            return still
        }
    #endif

    @Test func connectionsPastTheCapAreClosed() async throws {
        let server = try await ServeProcess(environment: ["KMS_MAX_CONNECTIONS": "20"])
        let held = try (0..<30).map { _ in try RawConnection(port: server.port) }
        try await Task.sleep(for: .milliseconds(500))
        var closed = 0
        for connection in held { if try await connection.isClosed(within: 0.2) { closed += 1 } }
        #expect(closed >= 10, "\(closed) of 30 connections closed with a cap of 20")
        for connection in held {
            connection.send("x")
            _ = try await connection.isClosed(within: 0.01)
        }
        var counted = 0
        for _ in 0..<50 where counted < closed {
            counted = (try? await Self.closedConnections(server, "cap")) ?? 0
            if counted < closed { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(counted >= closed, "\(counted) counted, \(closed) seen closed")
    }
}
