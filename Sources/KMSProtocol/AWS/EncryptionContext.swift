public import Foundation

/// aws-kms-v1 section 5: an `EncryptionContext` as caller AAD, serialized
/// as the AWS Encryption SDK does — empty or absent: no bytes; else
/// u16be(count), then the pairs sorted by the key's UTF-8 bytes, each
/// u16be(len) key u16be(len) value. Injective, so two contexts never share AAD.
public enum EncryptionContext {
    public static let maxEncodedBytes = 8192

    /// The AAD bytes; nil when a key is empty or the encoding is too long.
    public static func encode(_ context: [String: String]) -> Data? {
        guard !context.isEmpty else { return Data() }
        guard context.count <= 0xFFFF else { return nil }
        var out = Data()
        append(UInt16(context.count), to: &out)
        for (key, value) in context.sorted(by: { $0.key.bytesPrecede($1.key) }) {
            let (k, v) = (Data(key.utf8), Data(value.utf8))
            guard !k.isEmpty, k.count <= 0xFFFF, v.count <= 0xFFFF else { return nil }
            append(UInt16(k.count), to: &out)
            out.append(k)
            append(UInt16(v.count), to: &out)
            out.append(v)
        }
        return out.count <= maxEncodedBytes ? out : nil
    }

    private static func append(_ value: UInt16, to data: inout Data) {
        data.append(UInt8(value >> 8))
        data.append(UInt8(value & 0xFF))
    }
}
