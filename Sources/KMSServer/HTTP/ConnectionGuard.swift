import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// Bounds what a slow or greedy client can hold (issue 17), per connection,
/// in the channel pipeline after HTTP decoding:
///
/// - a request head must arrive within `headerTimeout` of the connection or of
///   the previous answer (the decoder emits the head only when it is whole, so
///   a client trickling a byte every second still runs out of time);
/// - its body must arrive within `bodyTimeout` of the head;
/// - past `maxConnections` open connections, a new one is closed at once; so is
///   one past its peer's share (`Counter`): a quarter of the cap per
///   allowlisted address (an IPv6 /64 counts as one), and a tenth for every
///   peer off the allowlist together, whose connections also close after
///   their first answer (a `403`), so that one host directly connected cannot
///   fill the cap, and hosts that may not use the server not at all;
/// - answers the client stops reading (the channel unwritable, and its buffered
///   bytes not shrinking) close the connection after `stallTimeout` (the idle
///   timeout): otherwise a client that pipelines large requests and never reads
///   holds the connection, and a graceful shutdown, for ever (a probe held one
///   90 s with a 4 s idle timeout). A slow reader keeps it while it makes progress.
///
/// A request that asks to switch protocols (`CONNECT`, or an `Upgrade`
/// header) is answered as any other, with `Connection: close`, and its
/// answer is the connection's last: NIO's decoder stops parsing after it and
/// would hold every later byte in memory until a deadline closed the
/// connection (a review: a client streaming after one grew the server's
/// memory by its link speed for ten seconds, on each of its connections).
/// So is a request that asks to close (`HTTP1Semantics`, installed ahead of
/// the conversion to HTTP types by this handler, says which do): RFC 9112
/// section 9.6, nothing after it is read.
///
/// A stalled connection is closed; nothing is answered on it (an answer would
/// need the request it never finished sending). Bytes that are not HTTP/1.1
/// (an unknown method token, a header past the decoder's limits, both
/// `Content-Length` and `Transfer-Encoding`) get the door's own `400` with a
/// JSON body, then the connection is closed; Hummingbird would send an empty
/// one. When such bytes follow a request still being answered (pipelined),
/// the `400` follows that answer. Allowlist refusals are not
/// made here: the contract answers them `403 address_not_allowed` on every
/// route, which needs the request.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The answer to bytes that are not HTTP/1.1: the door's error headers and JSON body.
    typealias MalformedAnswer = @Sendable () -> (HTTPFields, String)

    private let counter: Counter
    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    private let malformed: MalformedAnswer
    /// Told of each connection this handler closes on its own account (the metrics' count of them), once.
    private let closed: @Sendable (RequestMetrics.ClosedConnection) -> Void
    /// A close was counted: a timer that fires while it completes (TLS waits for `close_notify`, an
    /// unread `400`) counts nothing more.
    private var closeCounted = false
    /// What the armed deadline waits for, counted if it passes.
    private var deadlineReason = RequestMetrics.ClosedConnection.head
    private let stallTimeout: TimeAmount
    private let maxBodyBytes: Int
    /// When the connection closes unless something re-arms or disarms it first (nil: no deadline).
    private var deadline: NIODeadline?
    /// The one timer that enforces `deadline`, and when it fires. Moving the deadline does not touch
    /// it (a later deadline is checked again when it fires): two timers scheduled and cancelled per
    /// request were ten allocations of every request's 56 (healthz), and a search of the event
    /// loop's timer queue per cancel.
    private var check: Scheduled<Void>?
    private var checkAt = NIODeadline.distantFuture
    /// Runs while the channel is unwritable: answers the client does not read.
    private var stall: Scheduled<Void>?
    private var counted = false
    /// The peer's share, once taken (released with the connection).
    private var share: Counter.Share?
    /// Requests whose answer has not been written to its end (a client may pipeline).
    private var inFlight = 0
    /// How many requests a client may send ahead of their answers. NIO's decoder parses all it has read
    /// at once, so without a bound a client pipelining tiny requests and never reading the answers had
    /// each read of its socket (up to 256 KB, ten thousand `GET`s) decoded and queued, and the answers
    /// made and buffered as far as the socket took them: a probe's 250 such connections from one host
    /// grew the server to 1.3 GB and kept others' calls waiting 20 s. The request past this many is not
    /// answered: the ones before it are, the last with `Connection: close`, and the connection closes
    /// (RFC 9112 section 9.3.2: a client retries what a close left unanswered). Common HTTP clients do
    /// not pipeline at all. The close leaves the client's further requests unread, so the kernel may
    /// answer it with a reset, and a client that reads only after writing everything can lose some of
    /// those answers: the price of not reading what it sends (docs/threat-model.md).
    static let maxPipelined = 16
    /// Whether a request body is still arriving.
    private var readingBody = false
    /// A stranger's answer went out while its body was still arriving: closed at the body's end, since
    /// closing with unread input resets the connection and the client may lose the `403`, but no later
    /// than `strangerLinger` (a probe held a stranger's place for the whole body timeout by never
    /// sending the body it announced).
    private var closeAtBodyEnd = false
    static let strangerLinger = TimeAmount.seconds(2)
    /// And no more of a stranger's body than the largest body this server reads (`KMS_MAX_BODY_BYTES`):
    /// over loopback a body announced as a terabyte was read at 2.5–3.8 GB/s for the whole linger, 0.65 s
    /// of CPU a connection (a probe's 60 took 1.2 cores). A client that sends its whole body before
    /// reading (curl does, without `100-continue`) still reads its `403`: a smaller bound cut such
    /// bodies off with a reset (a review).
    private var drainedAfterAnswer = 0
    /// A request asked to switch protocols or to close: its answer closes the connection.
    private var closeAfterAnswer = false
    /// That request has arrived whole, or bytes that are not HTTP came: nothing after it is passed on,
    /// or read from the socket (`read`).
    private var ignoreInput = false
    /// Whether this handler answered bytes that were not HTTP: the connection is closing, and
    /// the decoder may report the same error twice (an unsupported HTTP version).
    private var answeredMalformed = false
    /// Such bytes came while an earlier request was being answered: the `400` follows its answer.
    private var malformedAfterAnswer = false

    init(
        counter: Counter, headerTimeout: TimeAmount, bodyTimeout: TimeAmount, stallTimeout: TimeAmount,
        maxBodyBytes: Int, malformed: @escaping MalformedAnswer,
        closed: @escaping @Sendable (RequestMetrics.ClosedConnection) -> Void = { _ in }
    ) {
        self.closed = closed
        self.counter = counter
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.stallTimeout = stallTimeout
        self.maxBodyBytes = maxBodyBytes
        self.malformed = malformed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        let open = counter.open.wrappingAdd(1, ordering: .relaxed).newValue
        let share = counter.share(of: context.channel.remoteAddress)
        guard open <= counter.maximum, counter.take(share) else {
            // Its place goes back now, not at the close's teardown: a refused flood holds no places.
            counted = false
            counter.open.wrappingSubtract(1, ordering: .relaxed)
            count(.cap)
            context.close(promise: nil)
            return
        }
        self.share = share
        installSemantics(context: context)
        arm(headerTimeout, for: .head, context: context)
    }

    /// Puts `HTTP1Semantics` right after NIO's decoder, where a request's version is still known.
    /// Without the decoder (a pipeline this handler does not know) the connection is closed:
    /// serving it would lose what that handler enforces.
    private func installSemantics(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        do {
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(
                HTTP1Semantics(maxBodyBytes: maxBodyBytes, mayContinue: share != .stranger), position: .after(decoder))
        } catch {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopChecking()
        cancelStall()
        if counted {
            counted = false
            counter.open.wrappingSubtract(1, ordering: .relaxed)
        }
        if let share {
            self.share = nil
            counter.give(share)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopChecking()
        cancelStall()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        cancelStall()
        if !context.channel.isWritable { watchStall(context.channel) }
        context.fireChannelWritabilityChanged()
    }

    /// Closes `channel` if its buffered answer does not shrink within `stallTimeout`: a client
    /// that reads slowly (a large answer over a slow link) keeps its connection, one that has
    /// stopped reading loses it.
    private func watchStall(_ channel: any Channel) {
        let buffered = Self.buffered(channel)
        stall = channel.eventLoop.assumeIsolated().scheduleTask(in: stallTimeout) { [self] in
            stall = nil
            guard !channel.isWritable else { return }
            if Self.buffered(channel) < buffered {
                watchStall(channel)
            } else {
                count(.stalled)
                channel.close(promise: nil)
            }
        }
    }

    private static func buffered(_ channel: any Channel) -> Int {
        (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if ignoreInput { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard inFlight < Self.maxPipelined else {
                // Pipelined too far ahead of its answers: answered up to here, then closed, this head and
                // all after it neither passed on nor read (see `maxPipelined`).
                ignoreInput = true
                closeAfterAnswer = true
                return
            }
            inFlight += 1
            readingBody = true
            if head.method == .connect || head.headerFields[.upgrade] != nil
                || head.headerFields[.connection] == "close"
            {
                closeAfterAnswer = true
            }
            arm(bodyTimeout, for: .body, context: context)
        case .end:
            readingBody = false
            ignoreInput = closeAfterAnswer
            disarm()
            if closeAtBodyEnd {
                // The handlers after this one see the request end, then the connection close.
                context.fireChannelRead(data)
                context.close(promise: nil)
                return
            }
            // Answered before its body ended (413, 403, 429): the next head's time starts now.
            if inFlight == 0 { arm(headerTimeout, for: .idle, context: context) }
        case .body(let buffer):
            if closeAtBodyEnd, share == .stranger {
                drainedAfterAnswer += buffer.readableBytes
                if drainedAfterAnswer > maxBodyBytes {
                    ignoreInput = true
                    context.close(promise: nil)
                    return
                }
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
            // Every answer is complete and no body is arriving: the next request's head has its own time.
            // While a request is being handled (or a pipelined one waits), no deadline runs.
            if inFlight == 0, !readingBody { arm(headerTimeout, for: .idle, context: context) }
            if malformedAfterAnswer, inFlight == 0 {
                context.write(data, promise: promise)
                answerMalformed(context: context)
                return
            }
            if share == .stranger || (closeAfterAnswer && inFlight == 0) {
                // A stranger's next request would be refused too, and nothing after a protocol switch is
                // read: the place goes back to the share now (after the body, if one is still arriving).
                guard !readingBody else {
                    closeAtBodyEnd = true
                    if bodyTimeout > Self.strangerLinger { arm(Self.strangerLinger, for: .body, context: context) }
                    context.write(data, promise: promise)
                    return
                }
                context.writeThenClose(data, promise: promise)
                return
            }
        }
        if share == .stranger || (closeAfterAnswer && inFlight == 1), case .head(var head) = unwrapOutboundIn(data) {
            head.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        }
        context.write(data, promise: promise)
    }

    /// A decoder error between requests is answered here, with a body that says what went
    /// wrong, after the answers still to come to earlier requests (pipelined); inside a body it
    /// goes to the request's reader (`RequestBodyReader`: the route's `400`).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Already answered, or about bytes after a request that closes the connection, which are not
        // read (NIO's decoder refuses any after `Connection: close`).
        if answeredMalformed || (ignoreInput && error is HTTPParserError) { return }
        guard error is HTTPParserError, !readingBody else {
            context.fireErrorCaught(error)
            return
        }
        answeredMalformed = true
        ignoreInput = true
        guard inFlight == 0 else {
            // Writing now would put this answer inside or before theirs; `write` sends it after the last.
            // A stranger's connection closes after its one answer, a `403` that said so: nothing follows.
            malformedAfterAnswer = share != .stranger
            return
        }
        answerMalformed(context: context)
    }

    /// Input that is ignored is not read either: the decoder, which does not stop after every request
    /// it refuses, would parse it at the link's speed, and NIO's encoder keeps the method of each
    /// request head it parses until answered (a review: 2 MB of memory per MB sent, for up to the idle
    /// timeout, on each connection). The connection closes after its last answer.
    func read(context: ChannelHandlerContext) {
        if ignoreInput { return }
        context.read()
    }

    private func answerMalformed(context: ChannelHandlerContext) {
        malformedAfterAnswer = false
        // A client that does not read the answer cannot hold the connection past the header deadline.
        arm(headerTimeout, for: .malformed, context: context)
        count(.malformed)
        let (fields, text) = malformed()
        let body = ByteBuffer(string: text)
        var head = HTTPResponse(status: .badRequest, headerFields: fields)
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Counts the close this handler starts, once per connection.
    private func count(_ reason: RequestMetrics.ClosedConnection) {
        guard !closeCounted else { return }
        closeCounted = true
        closed(reason)
    }

    private func arm(_ timeout: TimeAmount, for reason: RequestMetrics.ClosedConnection, context: ChannelHandlerContext)
    {
        let due = NIODeadline.now() + timeout
        deadline = due
        deadlineReason = reason
        if check == nil || checkAt > due { schedule(at: due, context.channel) }
    }

    /// Runs the check at `at`: it closes the channel if the deadline has passed, waits for
    /// the deadline if it was moved later, and stops if there is none (the next `arm` starts it).
    private func schedule(at: NIODeadline, _ channel: any Channel) {
        check?.cancel()
        checkAt = at
        check = channel.eventLoop.assumeIsolated().scheduleTask(deadline: at) { [self] in
            check = nil
            guard let due = deadline else { return }
            if due <= .now() {
                count(deadlineReason)
                channel.close(promise: nil)
            } else {
                schedule(at: due, channel)
            }
        }
    }

    private func disarm() {
        deadline = nil
    }

    private func stopChecking() {
        deadline = nil
        check?.cancel()
        check = nil
    }

    private func cancelStall() {
        stall?.cancel()
        stall = nil
    }
}

extension HTTP1Channel.Configuration {
    /// HTTP/1 with a `ConnectionGuard` per connection and the idle timeout: what
    /// every listener of the server uses (the native door and the AWS door, each
    /// with its own `counter`, so a flood of one door cannot close the other).
    static func guarded(
        _ config: KMSConfiguration, counter: ConnectionGuard.Counter,
        malformed: @escaping ConnectionGuard.MalformedAnswer, metrics: RequestMetrics, door: RequestMetrics.Door
    ) -> Self {
        let (headerTimeout, bodyTimeout) = (config.headerTimeoutMs, config.bodyTimeoutMs)
        return .init(
            additionalChannelHandlers: [
                ConnectionGuard(
                    counter: counter, headerTimeout: .milliseconds(headerTimeout),
                    bodyTimeout: .milliseconds(bodyTimeout), stallTimeout: .milliseconds(config.idleTimeoutMs),
                    maxBodyBytes: config.maxBodyBytes, malformed: malformed,
                    closed: { metrics.recordClosedConnection(door: door, reason: $0) })
            ],
            idleTimeout: .milliseconds(config.idleTimeoutMs))
    }
}
