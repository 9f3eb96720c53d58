import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/crypto/*`: operations with managed keys, and the random source.
struct CryptoController: Sendable {
    let channel: SealedChannel
    let keys: KeyRing

    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(.post, "/crypto/encrypt", sealed: true)
        router.post(
            "/crypto/encrypt",
            use: channel.route(EncryptRequest.self) { input, _ throws(KMSError) in
                try await keys.encrypt(input.keyId, plaintext: input.plaintext, aad: input.aad ?? Data())
            })
        table.add(.post, "/crypto/decrypt", sealed: true)
        router.post(
            "/crypto/decrypt",
            use: channel.route(CiphertextRequest.self) { input, _ throws(KMSError) in
                try await keys.decrypt(input.ciphertext, aad: input.aad ?? Data())
            })
        table.add(.post, "/crypto/rewrap", sealed: true)
        router.post(
            "/crypto/rewrap",
            use: channel.route(CiphertextRequest.self) { input, _ throws(KMSError) in
                try await keys.rewrap(input.ciphertext, aad: input.aad ?? Data())
            })
        table.add(.post, "/crypto/datakey", sealed: true)
        router.post(
            "/crypto/datakey",
            use: channel.route(DataKeyRequest.self) { input, _ throws(KMSError) in
                try await keys.dataKey(input.keyId, bytes: input.bytes ?? 32, aad: input.aad ?? Data())
            })
        table.add(.post, "/crypto/random", sealed: true)
        router.post(
            "/crypto/random",
            use: channel.route(RandomRequest.self) { input, _ throws(KMSError) in
                RandomResponse(random: Base64.encode(SymmetricKeyBytes.random(count: input.bytes)))
            })
    }
}
