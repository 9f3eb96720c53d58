import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import KMSServer

/// `HTTP1Semantics` on its own, in an `EmbeddedChannel`: NIO's parser refuses some heads before
/// they reach it over a socket (a Kelvin sign in `chunked`), so the handler's own comparisons are
/// checked here, where a head reaches it as the parser would have handed it on.
@Suite struct HTTP1SemanticsTests {
    private static func channel() -> EmbeddedChannel {
        EmbeddedChannel(handler: HTTP1Semantics(maxBodyBytes: 1024, mayContinue: true))
    }

    private static func head(_ name: String, _ value: String, version: HTTPVersion = .http1_1) -> HTTPServerRequestPart
    {
        var headers = HTTPHeaders([("host", "x")])
        headers.add(name: name, value: value)
        return .head(HTTPRequestHead(version: version, method: .POST, uri: "/crypto/encrypt", headers: headers))
    }

    /// A single `chunked`, in any ASCII case, passes; anything else is refused with the decoder's
    /// error, including a Kelvin sign for the `k`, which `lowercased()` had turned into `chunked`.
    @Test func transferCodingsAreComparedByTheirBytes() throws {
        for coding in ["chunked", "Chunked", "CHUNKED"] {
            let channel = Self.channel()
            try channel.writeInbound(Self.head("transfer-encoding", coding))
            let passed = try channel.readInbound(as: HTTPServerRequestPart.self)
            guard case .head? = passed else {
                Issue.record("\(coding) was not passed on")
                continue
            }
            _ = try channel.finish()
        }
        for coding in ["chun\u{212A}ed", "gzip", "gzip, chunked", "chunked, chunked"] {
            let channel = Self.channel()
            #expect(throws: HTTPParserError.self, "\(coding)") {
                try channel.writeInbound(Self.head("transfer-encoding", coding))
            }
            #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == nil, "\(coding)")
            _ = try? channel.finish()
        }
    }

    /// An absolute-form target names the `Host` it comes with, in any ASCII case, or is refused (RFC
    /// 9112 section 3.2.2: a review sent `POST http://evil:1/` with the signed `Host` of the AWS door and
    /// was answered, where a proxy in front that follows the RFC routes by the target's name).
    @Test func anAbsoluteTargetMustNameItsHost() throws {
        #expect(HTTP1Semantics.targetAgrees("/crypto/encrypt", host: "anything"))
        #expect(HTTP1Semantics.targetAgrees("http://Kms.Example:8443/", host: "kms.example:8443"))
        #expect(HTTP1Semantics.targetAgrees("https://127.0.0.1:3977?x#y", host: "127.0.0.1:3977"))
        // The scheme's default port, written or not, on either side (RFC 9110 section 4.2.3).
        #expect(HTTP1Semantics.targetAgrees("http://kms.example/", host: "kms.example:80"))
        #expect(HTTP1Semantics.targetAgrees("HTTP://kms.example:80/", host: "kms.example"))
        #expect(HTTP1Semantics.targetAgrees("https://kms:/", host: "kms:443"))
        #expect(HTTP1Semantics.targetAgrees("http://[::1]/", host: "[::1]:80"))
        #expect(HTTP1Semantics.targetAgrees("http://[::1]:3977/", host: "[::1]:3977"))
        // The asterisk form is OPTIONS's alone (RFC 9112 section 3.2.4).
        #expect(HTTP1Semantics.targetAgrees("*", host: "kms", method: .OPTIONS))
        for (target, host) in [
            ("http://evil:1/", "127.0.0.1:4541"), ("http://user@kms/", "kms"), ("kms:443", "kms"),
            ("http://kms.example:443/", "kms.example"), ("https://kms.example/", "kms.example:80"),
            ("http://[::1]/", "[::1]:3977"), ("ftp://kms/", "kms"), ("http://\u{212A}ms/", "kms"),
            // Not a plain host and port, even when both sides write it alike (a review).
            ("http://user@kms/", "user@kms"), ("http://k%6Ds/", "k%6Ds"), ("http://kms\\@evil/", "kms\\@evil"),
            ("http://:80/", ""), ("http://kms::/", "kms::80"), ("http://kms:8o/", "kms:8o"),
        ] {
            #expect(!HTTP1Semantics.targetAgrees(target, host: host, method: .GET), "\(target)")
        }
        #expect(!HTTP1Semantics.targetAgrees("*", host: "kms", method: .GET))
        let channel = Self.channel()
        #expect(throws: HTTPParserError.self) {
            try channel.writeInbound(
                HTTPServerRequestPart.head(
                    HTTPRequestHead(
                        version: .http1_1, method: .POST, uri: "http://evil:1/", headers: HTTPHeaders([("host", "x")])))
            )
        }
        _ = try? channel.finish()
    }

    /// A body in pieces too small is refused once past the allowance, and nothing more is read; the same
    /// bytes in larger pieces, or a long body in parts of a network read's size, pass.
    @Test func aBodyInTinyPiecesIsRefused() throws {
        let channel = Self.channel()
        try channel.writeInbound(Self.head("transfer-encoding", "chunked"))
        // One request's allowance: 64 parts, four for the request, and one per 128 bytes (none here).
        let allowed = HTTP1Semantics.smallPartAllowance + HTTP1Semantics.partsPerRequest
        for _ in 0..<allowed {
            try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        #expect(throws: HTTP1Semantics.PiecesTooSmall.self) {
            try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        // Dropped from then on, and the read it would need is not asked for.
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        var passed = 0
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .body = part { passed += 1 }
        }
        #expect(passed == allowed)
        _ = try? channel.finish()

        // The count is the connection's: a request of 64 one-byte chunks passes, and the next request may
        // add only what its own head allows (four parts) before it is refused.
        let twice = Self.channel()
        try twice.writeInbound(Self.head("transfer-encoding", "chunked"))
        for _ in 0..<HTTP1Semantics.smallPartAllowance {
            try twice.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        try twice.writeInbound(HTTPServerRequestPart.end(nil))
        try twice.writeInbound(Self.head("transfer-encoding", "chunked"))
        for _ in 0..<(2 * HTTP1Semantics.partsPerRequest) {
            try twice.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        #expect(throws: HTTP1Semantics.PiecesTooSmall.self) {
            try twice.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        _ = try? twice.finish()
        // A thousand requests with a 60-byte body in three chunks each pass (a chunked sender writing small
        // bodies in pieces), and requests without a body count as well.
        let many = Self.channel()
        for _ in 0..<1_000 {
            try many.writeInbound(Self.head("transfer-encoding", "chunked"))
            for _ in 0..<3 { try many.writeInbound(HTTPServerRequestPart.body(ByteBuffer(repeating: 0x61, count: 20))) }
            try many.writeInbound(HTTPServerRequestPart.end(nil))
        }
        _ = try many.finish()
        let bodiless = Self.channel()
        for _ in 0..<10 {
            try bodiless.writeInbound(Self.head("x-probe", "1"))
            try bodiless.writeInbound(HTTPServerRequestPart.end(nil))
        }
        try bodiless.writeInbound(Self.head("transfer-encoding", "chunked"))
        for _ in 0..<(HTTP1Semantics.smallPartAllowance + 11 * HTTP1Semantics.partsPerRequest) {
            try bodiless.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        #expect(throws: HTTP1Semantics.PiecesTooSmall.self) {
            try bodiless.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "a")))
        }
        _ = try? bodiless.finish()

        let large = Self.channel()
        for _ in 0..<3 {
            try large.writeInbound(Self.head("content-length", "\(1_000 * 600)"))
            for _ in 0..<1_000 {
                try large.writeInbound(HTTPServerRequestPart.body(ByteBuffer(repeating: 0x61, count: 600)))
            }
            try large.writeInbound(HTTPServerRequestPart.end(nil))
        }
        var parts = 0
        while try large.readInbound(as: HTTPServerRequestPart.self) != nil { parts += 1 }
        #expect(parts == 3 * 1_002)
        _ = try large.finish()
    }

    /// `close` in any ASCII case, alone or among other options, becomes exactly `Connection: close`;
    /// text that only lower-cases to it does not.
    @Test func connectionCloseIsReadInAnyASCIICase() throws {
        for (value, closes) in [("close", true), ("Close", true), ("keep-alive, CLOSE", true), ("keep-alive", false)] {
            let channel = Self.channel()
            try channel.writeInbound(Self.head("connection", value))
            guard case .head(let head)? = try channel.readInbound(as: HTTPServerRequestPart.self) else {
                Issue.record("\(value) was not passed on")
                continue
            }
            #expect(head.headers["connection"].contains("close") == closes, "\(value): \(head.headers)")
            _ = try channel.finish()
        }
    }

    /// `Expect: 100-continue` in any ASCII case is answered with `100 Continue`; another expectation is not.
    @Test func expectContinueIsReadInAnyASCIICase() throws {
        for (value, continues) in [("100-continue", true), ("100-Continue", true), ("100-continue-ish", false)] {
            let channel = Self.channel()
            var headers = HTTPHeaders([("host", "x"), ("content-length", "10"), ("expect", value)])
            headers.add(name: "x-probe", value: "1")
            try channel.writeInbound(
                HTTPServerRequestPart.head(
                    HTTPRequestHead(version: .http1_1, method: .POST, uri: "/crypto/encrypt", headers: headers)))
            let written = try channel.readOutbound(as: HTTPServerResponsePart.self)
            if continues {
                guard case .head(let response)? = written else {
                    Issue.record("\(value): no 100 Continue")
                    continue
                }
                #expect(response.status == .continue)
            } else {
                #expect(written == nil, "\(value)")
            }
            _ = try channel.finish()
        }
    }
}
