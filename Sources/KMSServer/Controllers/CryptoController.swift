import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/crypto/*`: operations with managed keys and the random source.
struct CryptoController: Sendable {
    let channel: SealedChannel

    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(.post, "/crypto/random", sealed: true)
        router.post(
            "/crypto/random",
            use: channel.route(RandomRequest.self) { input, _, _ throws(KMSError) in
                RandomResponse(random: Base64.encode(SymmetricKeyBytes.random(count: input.bytes)))
            })
    }
}
