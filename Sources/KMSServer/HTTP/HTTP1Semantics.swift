import KMSProtocol
import NIOCore
import NIOHTTP1

/// What HTTP/1.1 (RFC 9112, RFC 9110) asks of a server that is lost once a request head becomes
/// an `HTTPRequest`: its version, and connection options written in any case. It sits between
/// NIO's decoder and Hummingbird's conversion to HTTP types (`ConnectionGuard` installs it), and:
///
/// - marks a request whose connection must close after its answer with exactly
///   `Connection: close`, the one form Hummingbird and `ConnectionGuard` act on: an HTTP/1.0
///   request without `keep-alive`, or a `close` option in any case or among other options (an
///   edge probe's HTTP/1.0 client and `Connection: Close` were each held until a timeout, 10 s);
/// - tells an HTTP/1.0 client that asked for `keep-alive` that the connection stays open (without
///   it such a client closes after each answer);
/// - answers `Expect: 100-continue` with `100 Continue` when the body is wanted: HTTP/1.1, a
///   body declared within the limit, a peer on the allowlist, and no earlier answer still being
///   written, to its end (a `100` there would land inside it). Without it a client waits its own
///   timeout (curl 1 s) before sending the body; a body declared past the limit gets its `413`
///   with no `100`;
/// - refuses an HTTP/1.1 request without `Host`, and any request with two (RFC 9112 section 3.2), as
///   it refuses a transfer coding;
/// - refuses a transfer coding other than a single `chunked` (RFC 9112 section 6.1 lets a server
///   refuse codings it does not apply; NIO reads the chunks and would hand the handlers a gzip or
///   deflate body as if it were plain): the request goes no further, and `ConnectionGuard`
///   answers the error as it answers bytes that are not HTTP/1.1, after any earlier answer;
/// - refuses a body that arrives in pieces too small to be worth their cost (`PiecesTooSmall`): NIO
///   hands on each chunk of a chunked body, and each read of a plain one, as a part of its own, and
///   every part costs the same few microseconds on its way to the handler, however small. A review
///   sent 1 MiB in 1-byte chunks (6 MB on the wire) and it cost 0.95 s of CPU (64 KiB chunks: 3 ms);
///   two such connections, even from a host off the allowlist, took sealed calls from 12,800 to 2,000
///   a second. A connection's body parts may number `smallPartAllowance`, `partsPerRequest` more per
///   request (with a body or not), and one more per `minimumAveragePart` bytes of body, counted over
///   the whole connection (a review of a count per request found that keep-alive requests of 64
///   one-byte chunks each cost as much as the flood); past that the body is refused (the route's
///   `400`, through the request's reader), nothing more of the connection is read, and it closes
///   after its answer. A body with a `Content-Length` arrives in the reads the network gives (a
///   segment is 500 bytes or more, which earns four parts), usually one per request; a chunked
///   sender may write a small body in up to four pieces per request for ever, an attacker pays a
///   whole request for every four tiny parts.
final class HTTP1Semantics: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Whether a request target names no other server than `Host` (RFC 9112 section 3.2.2): an
    /// absolute-form target (`http://name/…`) must name the `Host` it comes with, which is what both
    /// doors read (the AWS door signs it). A proxy in front that follows the RFC routes by the target's
    /// name while this server took the `Host`'s (a review sent `POST http://evil:1/` with a signed
    /// `Host` and was answered). The names are compared in ASCII case and with the scheme's default port
    /// written out (RFC 9110 section 4.2.3: `http://kms/` and `Host: kms:80` name one server). The
    /// origin form, which every client sends, passes untouched, and so does `OPTIONS *` (the asterisk
    /// form, which RFC 9112 section 3.2.4 gives OPTIONS), which the routes answer as any path they do not have.
    static func targetAgrees(_ target: String, host: String, method: HTTPMethod = .GET) -> Bool {
        if target.hasPrefix("/") || (target == "*" && method == .OPTIONS) { return true }
        let bytes = Array(target.utf8)
        guard let separator = bytes.firstRange(of: Array("://".utf8)) else { return false }
        let scheme = bytes[..<separator.lowerBound].map(lowered)
        let defaultPort: [UInt8]
        switch scheme {
        case Array("http".utf8): defaultPort = Array("80".utf8)
        case Array("https".utf8): defaultPort = Array("443".utf8)
        default: return false
        }
        let rest = bytes[separator.upperBound...]
        let authority = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        guard let target = withPort(authority.map(lowered), defaultPort),
            let named = withPort(host.utf8.map(lowered), defaultPort)
        else { return false }
        return target == named
    }

    private static func lowered(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    /// An authority with its port written out: the default one when it has none or an empty one (RFC 3986
    /// section 6.2.3). The port follows the last `:` that is not inside an IPv6 literal's brackets. Nil for
    /// one that is not a plain host and port: an empty host (RFC 9110 section 4.2.1), a port that is not
    /// digits, or user information, a percent-encoding or a backslash, which parsers read in different ways
    /// (a review: `http://user@kms/` agreed with `Host: user@kms`).
    private static func withPort(_ authority: [UInt8], _ defaultPort: [UInt8]) -> [UInt8]? {
        guard !authority.contains(where: { [UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "\\")].contains($0) })
        else { return nil }
        let afterLiteral = (authority.lastIndex(of: UInt8(ascii: "]")) ?? -1) + 1
        let colon = authority[afterLiteral...].lastIndex(of: UInt8(ascii: ":"))
        let hostEnd = colon ?? authority.count
        let port = colon.map { authority[($0 + 1)...] } ?? []
        let name = authority[..<hostEnd]
        // A colon in the host only inside an IPv6 literal's brackets (`kms::` is no host and empty port).
        let literal = name.first == UInt8(ascii: "[") && name.last == UInt8(ascii: "]")
        guard !name.isEmpty, literal || !name.contains(UInt8(ascii: ":")),
            port.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        return name + [UInt8(ascii: ":")] + (port.isEmpty ? defaultPort[...] : port)
    }

    /// The error a refused transfer coding raises (an `HTTPParserError`, so that it is answered as
    /// the decoder's own errors are: the door's `400`, then the connection closes).
    static let refusedCoding = HTTPParserError.invalidConstant

    private let maxBodyBytes: Int
    /// Whether `100 Continue` may be sent: not to a peer off the allowlist, whose one answer is a `403`.
    private let mayContinue: Bool
    /// For each request whose final answer has not started, oldest first: whether it is an
    /// HTTP/1.0 request that asked to keep the connection (its answer says so).
    private var unanswered: [Bool] = []
    /// Requests whose answer has not been written to its end.
    private var open = 0
    /// A request was refused: nothing after it is read (the connection closes after its answer).
    private var refused = false
    /// A body was refused in pieces: the connection closes after the answers still to come (its route's
    /// `400` last). A refused transfer coding is answered and closed by `ConnectionGuard` instead.
    private var closeAfterAnswers = false
    /// The connection's body parts, their bytes and its requests so far.
    private var bodyParts = 0
    private var bodyBytes = 0
    private var requests = 0

    /// Parts of any size a connection's bodies may arrive in beyond what their bytes and requests allow.
    static let smallPartAllowance = 64
    /// The bytes of body that allow one more part.
    static let minimumAveragePart = 128
    /// The parts each request allows, with a body or not.
    static let partsPerRequest = 4

    /// The error a body in pieces too small raises: `RequestBodyReader` answers it with its own message.
    struct PiecesTooSmall: Error {
        static let message =
            "the request body arrives in pieces too small to read (on this connection, more than \(smallPartAllowance) "
            + "parts beyond one per \(minimumAveragePart) bytes and \(partsPerRequest) per request): write it in larger pieces (chunks "
            + "of a few kilobytes, or the whole body at once)"
    }

    init(maxBodyBytes: Int, mayContinue: Bool) {
        self.maxBodyBytes = maxBodyBytes
        self.mayContinue = mayContinue
        unanswered.reserveCapacity(4)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refused { return }
        let part = unwrapInboundIn(data)
        if case .body(let buffer) = part {
            bodyParts += 1
            bodyBytes += buffer.readableBytes
            if bodyParts > Self.smallPartAllowance + bodyBytes / Self.minimumAveragePart + Self.partsPerRequest
                * requests
            {
                refused = true
                closeAfterAnswers = true
                context.fireErrorCaught(PiecesTooSmall())
                // Answered already (a route that did not read its body, which is being drained): nothing
                // is left to write.
                if open == 0 { context.close(promise: nil) }
                return
            }
        }
        guard case .head(var head) = part else {
            context.fireChannelRead(data)
            return
        }
        requests += 1
        let codings = head.headers[canonicalForm: "transfer-encoding"]
        let isHTTP10 = head.version.major == 1 && head.version.minor == 0
        // RFC 9112 section 3.2: an HTTP/1.1 request without `Host`, or any with two, is a `400` (a probe
        // found one without accepted; a proxy that reads one Host and this server another would see two
        // requests).
        // Counted in place: the subscript would build an array of values for every request (a review).
        var hosts = 0
        var host = ""
        for (name, value) in head.headers where name.utf8.count == 4 && name.equalsASCIICaseInsensitive("host") {
            hosts += 1
            host = value
        }
        let badCoding =
            !codings.isEmpty && (codings.count != 1 || !codings[0].equalsASCIICaseInsensitive("chunked"))
        if badCoding || hosts > 1 || (hosts == 0 && !isHTTP10)
            || !Self.targetAgrees(head.uri, host: host, method: head.method)
        {
            refused = true
            context.fireErrorCaught(Self.refusedCoding)
            return
        }
        // NIO keeps an HTTP/1.0 connection that says `keep-alive, close`; a close option wins here (the
        // input after it is not read, so the decoder's view does not matter).
        let keepAlive =
            head.isKeepAlive
            && !head.headers[canonicalForm: "connection"].contains { $0.equalsASCIICaseInsensitive("close") }
        if !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
        if !isHTTP10, open == 0, mayContinue, wantsContinue(head) {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        unanswered.append(isHTTP10 && keepAlive)
        open += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where !head.status.isInformational && !unanswered.isEmpty:
            if unanswered.removeFirst(), !head.headers.contains(name: "connection") {
                head.headers.add(name: "connection", value: "keep-alive")
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
        case .end:
            open = max(0, open - 1)
            if closeAfterAnswers, open == 0 {
                // The refused request's answer is the connection's last: nothing after it was read.
                context.writeThenClose(data, promise: promise)
                return
            }
        default: break
        }
        context.write(data, promise: promise)
    }

    /// Nothing more is read once a request is refused: its parts would cost what the refusal saves.
    func read(context: ChannelHandlerContext) {
        if refused { return }
        context.read()
    }

    /// `Expect: 100-continue` on a request whose declared body this server would read.
    private func wantsContinue(_ head: HTTPRequestHead) -> Bool {
        let expect = head.headers[canonicalForm: "expect"]
        guard expect.count == 1, expect[0].equalsASCIICaseInsensitive("100-continue") else { return false }
        if let declared = head.headers.first(name: "content-length") {
            guard let length = Int(declared) else { return false }
            return length > 0 && length <= maxBodyBytes
        }
        return head.headers.contains(name: "transfer-encoding")
    }
}

extension HTTPResponseStatus {
    /// A `1xx` other than `101`: a head that another head follows.
    fileprivate var isInformational: Bool { (100..<200).contains(code) && code != 101 }
}

extension ChannelHandlerContext {
    /// Writes a connection's last part and closes the channel once it is written (or failed):
    /// `ConnectionGuard` after a stranger's one answer, `HTTP1Semantics` after a refused body's.
    func writeThenClose(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        let channel = self.channel
        let written = promise ?? eventLoop.makePromise()
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        write(data, promise: written)
    }
}
