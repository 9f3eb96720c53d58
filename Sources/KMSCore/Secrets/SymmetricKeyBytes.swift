import Crypto
public import Foundation

/// Random bytes from the system CSPRNG, through swift-crypto.
public enum SymmetricKeyBytes {
    /// `count` bytes drawn from the system CSPRNG (a `SymmetricKey` of that size).
    public static func random(count: Int) -> Data {
        SymmetricKey(size: SymmetricKeySize(bitCount: count * 8)).withUnsafeBytes { Data($0) }
    }
}
