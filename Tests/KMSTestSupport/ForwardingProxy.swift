import NIOCore
import NIOPosix
import Synchronization

/// A TCP forwarder on 127.0.0.1 that can break its connections as a network does.
/// - Silent: `silenceOpenConnections()` makes every connection open at that moment drop what either side
///   sends, without closing either side. That is how a connection dies behind a NAT or firewall that forgot
///   the flow, or across a failover: no FIN, no reset, just no answer. Connections made afterwards forward as
///   before.
/// - Reset: a client's read that contains `resetting` (a request line, say) is not forwarded, and the
///   client's connection is reset (an RST): a server that dies as it reads one request.
public final class ForwardingProxy: Sendable {
    /// One forwarded connection's switch, shared by its two sides.
    final class Pair: Sendable {
        let silent = Atomic<Bool>(false)
    }

    /// The connections made so far.
    final class Pairs: Sendable {
        let all = Mutex<[Pair]>([])
    }

    public let port: Int
    private let server: any Channel
    private let pairs = Pairs()

    /// Listens on an ephemeral port of 127.0.0.1 and forwards each connection to `host`:`port`;
    /// connections from the `silentFrom`th on (counting from 0) are silent from their start.
    public init(
        forwardingTo host: String, port upstreamPort: Int, silentFrom: Int = .max, resetting: String? = nil
    ) async throws {
        let trigger = resetting.map { Array($0.utf8) }
        let pairs = self.pairs
        let group = MultiThreadedEventLoopGroup.singleton
        server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)  // until its upstream is connected
            .childChannelInitializer { inbound in
                let pair = Pair()
                pairs.all.withLock {
                    if $0.count >= silentFrom { pair.silent.store(true, ordering: .relaxed) }
                    $0.append(pair)
                }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { outbound in
                        outbound.pipeline.addHandler(Forwarder(partner: inbound, pair: pair))
                    }
                    .connect(host: host, port: upstreamPort)
                    .flatMap { outbound in
                        inbound.pipeline.addHandler(Forwarder(partner: outbound, pair: pair, resetting: trigger))
                            .flatMap {
                                inbound.setOption(.autoRead, value: true)
                            }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = server.localAddress?.port ?? 0
    }

    /// Every connection open now stops forwarding, in both directions, and stays open.
    public func silenceOpenConnections() {
        pairs.all.withLock { pairs in
            for pair in pairs { pair.silent.store(true, ordering: .relaxed) }
        }
    }

    public func close() async {
        try? await server.close()
    }

    /// Copies what one side reads to its partner, unless the pair is silent; resets its own side instead when
    /// what it read contains `resetting`.
    final class Forwarder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        let partner: any Channel
        let pair: Pair
        let resetting: [UInt8]?

        init(partner: any Channel, pair: Pair, resetting: [UInt8]? = nil) {
            self.partner = partner
            self.pair = pair
            self.resetting = resetting
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            if let resetting, bytes.readableBytesView.firstRange(of: resetting) != nil {
                // SO_LINGER 0: the close sends an RST, not a FIN.
                let channel = context.channel
                let partner = self.partner
                let linger = (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                (linger ?? channel.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
                    channel.close(promise: nil)
                    partner.close(promise: nil)
                }
                return
            }
            if !pair.silent.load(ordering: .relaxed) { partner.writeAndFlush(bytes, promise: nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !pair.silent.load(ordering: .relaxed) { partner.close(promise: nil) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
