import Foundation
import KMSCore
import KMSProtocol

/// `/crypto/*`: operations with managed keys, and the random source.
struct CryptoController: Sendable {
    let keys: KeyRing
    let audit: Auditor

    func register(on routes: inout RouteBuilder) {
        routes.sealed(
            .post, WirePath.encrypt, EncryptRequest.self, permission: .key(.cryptoEncrypt) { input, _ in input.keyId },
            doc: RouteDoc(
                tag: "crypto", summary: "Encrypt",
                description: "AES-256-GCM under the key's active version; the ciphertext names key and version.",
                errors: [.keyNotFound, .keyDisabled, .keyPendingDeletion])
        ) { input, call throws(KMSError) in
            try await audit.crypto("encrypt", call, asked: input.keyId, keyAndVersion: { ($0.keyId, $0.version) }) {
                () throws(KMSError) in
                try await keys.encrypt(call.key(input.keyId), plaintext: input.plaintext, aad: input.aad ?? Data())
            }
        }
        routes.sealed(
            .post, WirePath.decrypt, CiphertextRequest.self, permission: .ciphertextKey(.cryptoDecrypt),
            doc: RouteDoc(
                tag: "crypto", summary: "Decrypt",
                description: "Needs no key id: the ciphertext names it. Give the same aad as at encryption.",
                errors: [
                    .keyNotFound, .keyDisabled, .keyPendingDeletion, .keyVersionNotFound, .keyVersionRetired,
                    .decryptionFailed,
                ])
        ) { input, call throws(KMSError) in
            try await audit.crypto(
                "decrypt", call, keyId: KeyCiphertext(parsingEitherForm: input.ciphertext)?.keyId,
                keyAndVersion: { ($0.keyId, $0.version) }
            ) {
                () throws(KMSError) in
                try await keys.decrypt(input.ciphertext, aad: input.aad ?? Data())
            }
        }
        routes.sealed(
            .post, WirePath.rewrap, CiphertextRequest.self, permission: .ciphertextKey(.cryptoRewrap),
            doc: RouteDoc(
                tag: "crypto", summary: "Rewrap",
                description: "Re-encrypts under the key's active version; the plaintext never leaves the server.",
                errors: [
                    .keyNotFound, .keyDisabled, .keyPendingDeletion, .keyVersionNotFound, .keyVersionRetired,
                    .decryptionFailed,
                ])
        ) { input, call throws(KMSError) in
            try await audit.crypto(
                "rewrap", call, keyId: KeyCiphertext(parsingEitherForm: input.ciphertext)?.keyId,
                keyAndVersion: { ($0.keyId, $0.version) }
            ) {
                () throws(KMSError) in
                try await keys.rewrap(input.ciphertext, aad: input.aad ?? Data())
            }
        }
        routes.sealed(
            .post, WirePath.dataKey, DataKeyRequest.self, permission: .key(.cryptoDatakey) { input, _ in input.keyId },
            doc: RouteDoc(
                tag: "crypto", summary: "Make a data key",
                description:
                    "Envelope encryption: a fresh data key in the clear, and the same key encrypted under the managed key.",
                errors: [.keyNotFound, .keyDisabled, .keyPendingDeletion])
        ) { input, call throws(KMSError) in
            try await audit.crypto("datakey", call, asked: input.keyId, keyAndVersion: { ($0.keyId, $0.version) }) {
                () throws(KMSError) in
                try await keys.dataKey(
                    call.key(input.keyId), bytes: input.bytes ?? CryptoLimits.defaultDataKeyBytes,
                    aad: input.aad ?? Data())
            }
        }
        routes.sealed(
            .post, WirePath.random, RandomRequest.self, permission: .session,
            doc: RouteDoc(
                tag: "crypto", summary: "Random bytes", description: "1 to 1024 bytes from the server's CSPRNG.",
                errors: [])
        ) { input, call throws(KMSError) in
            await audit.note(AuditEvent("crypto.random", Auditor.who(call) + [("bytes", "\(input.bytes)")]))
            return RandomResponse(random: Base64.encode(SymmetricKeyBytes.random(count: input.bytes)))
        }
    }
}
