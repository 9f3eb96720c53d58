import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Synchronization

/// The floors of `kms bench --floors`: what the cryptography alone allows,
/// in-process, on this machine, in this run: single-threaded, and for RSA
/// also on every core at once (what key exchange is measured against).
enum Floors {
    static func measure(payloadBytes: Int, seconds: Double) throws -> (
        rsa: Floor, rsaAllCores: Floor, seal: Floor, open: Floor
    ) {
        let identity = try IdentityKey.generate()
        let wrapped = try ClientSeal.wrapSessionKey(SymmetricKey(size: .bits256), publicKeyPEM: identity.publicKeyPEM)
        let rsa = try measureSerial(seconds: seconds) {
            _ = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity)
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let rates = Mutex([Double](repeating: 0, count: cores))
        DispatchQueue.concurrentPerform(iterations: cores) { index in
            let rate =
                (try? measureSerial(seconds: seconds) {
                    _ = try SessionKeyUnwrapper.unwrap(wrappedKey: wrapped, with: identity)
                }) ?? 0
            rates.withLock { $0[index] = rate }
        }
        let rsaAllCores = rates.withLock { $0.reduce(0, +) }
        let key = SymmetricKey(size: .bits256)
        let payload = Data(repeating: 0x61, count: payloadBytes)
        let aad = EnvelopeAAD.request(method: "POST", target: WirePath.encrypt, sessionId: "bench", seq: 1)
        let envelope = try EnvelopeCipher.seal(payload, key: key, aad: aad, seq: 1)
        let seal = try measureSerial(seconds: seconds) {
            _ = try EnvelopeCipher.seal(payload, key: key, aad: aad, seq: 1)
        }
        let open = try measureSerial(seconds: seconds) { _ = try EnvelopeCipher.open(envelope, key: key, aad: aad) }
        return (
            Floor(name: "RSA-4096 OAEP unwrap", perSecond: rsa),
            Floor(name: "RSA-4096 OAEP unwrap, \(cores) threads", perSecond: rsaAllCores),
            Floor(name: "AES-256-GCM seal, \(payloadBytes) B", perSecond: seal),
            Floor(name: "AES-256-GCM open, \(payloadBytes) B", perSecond: open)
        )
    }
}
