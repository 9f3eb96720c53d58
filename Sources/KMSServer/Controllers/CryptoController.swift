import Foundation
import Hummingbird
import KMSCore
import KMSProtocol

/// `/crypto/*`: operations with managed keys, and the random source.
struct CryptoController: Sendable {
    let channel: SealedChannel
    let keys: KeyRing
    let audit: Auditor

    func register(on router: Router<KMSRequestContext>, table: inout RouteTable) {
        table.add(
            .post, "/crypto/encrypt", sealed: true,
            doc: RouteDoc(
                tag: "crypto", summary: "Encrypt",
                description: "AES-256-GCM under the key's active version; the ciphertext names key and version.",
                request: EncryptRequest.self, response: CiphertextResponse.self, errors: [.keyNotFound]))
        router.post(
            "/crypto/encrypt",
            use: channel.route(EncryptRequest.self) { input, call throws(KMSError) in
                try await audit.crypto("encrypt", call, keyAndVersion: { ($0.keyId, $0.version) }) {
                    () throws(KMSError) in
                    try await keys.encrypt(input.keyId, plaintext: input.plaintext, aad: input.aad ?? Data())
                }
            })
        table.add(
            .post, "/crypto/decrypt", sealed: true,
            doc: RouteDoc(
                tag: "crypto", summary: "Decrypt",
                description: "Needs no key id: the ciphertext names it. Give the same aad as at encryption.",
                request: CiphertextRequest.self, response: DecryptResponse.self,
                errors: [.keyNotFound, .keyVersionNotFound, .keyVersionRetired, .decryptionFailed]))
        router.post(
            "/crypto/decrypt",
            use: channel.route(CiphertextRequest.self) { input, call throws(KMSError) in
                try await audit.crypto("decrypt", call, keyAndVersion: { ($0.keyId, $0.version) }) {
                    () throws(KMSError) in
                    try await keys.decrypt(input.ciphertext, aad: input.aad ?? Data())
                }
            })
        table.add(
            .post, "/crypto/rewrap", sealed: true,
            doc: RouteDoc(
                tag: "crypto", summary: "Rewrap",
                description: "Re-encrypts under the key's active version; the plaintext never leaves the server.",
                request: CiphertextRequest.self, response: CiphertextResponse.self,
                errors: [.keyNotFound, .keyVersionNotFound, .keyVersionRetired, .decryptionFailed]))
        router.post(
            "/crypto/rewrap",
            use: channel.route(CiphertextRequest.self) { input, call throws(KMSError) in
                try await audit.crypto("rewrap", call, keyAndVersion: { ($0.keyId, $0.version) }) {
                    () throws(KMSError) in
                    try await keys.rewrap(input.ciphertext, aad: input.aad ?? Data())
                }
            })
        table.add(
            .post, "/crypto/datakey", sealed: true,
            doc: RouteDoc(
                tag: "crypto", summary: "Make a data key",
                description:
                    "Envelope encryption: a fresh data key in the clear, and the same key encrypted under the managed key.",
                request: DataKeyRequest.self, response: DataKeyResponse.self, errors: [.keyNotFound]))
        router.post(
            "/crypto/datakey",
            use: channel.route(DataKeyRequest.self) { input, call throws(KMSError) in
                try await audit.crypto("datakey", call, keyAndVersion: { ($0.keyId, $0.version) }) {
                    () throws(KMSError) in
                    try await keys.dataKey(input.keyId, bytes: input.bytes ?? 32, aad: input.aad ?? Data())
                }
            })
        table.add(
            .post, "/crypto/random", sealed: true,
            doc: RouteDoc(
                tag: "crypto", summary: "Random bytes", description: "1 to 1024 bytes from the server's CSPRNG.",
                request: RandomRequest.self, response: RandomResponse.self, errors: []))
        router.post(
            "/crypto/random",
            use: channel.route(RandomRequest.self) { input, call throws(KMSError) in
                await audit.note(AuditEvent("crypto.random", Auditor.who(call) + [("bytes", "\(input.bytes)")]))
                return RandomResponse(random: Base64.encode(SymmetricKeyBytes.random(count: input.bytes)))
            })
    }
}
