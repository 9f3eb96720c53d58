import Foundation
import KMSProtocol

/// The file store's `key-usage.json`: encryption counts by key and version,
/// kept beside the records so that they stay lifecycle-v1's format.
///
/// ```json
/// {"format": "kms-key-usage-v1", "keys": {"key_…": {"1": 1234, "2": 5}}}
/// ```
enum KeyUsageFile {
    static let tag = "kms-key-usage-v1"

    static func encode(_ usage: [String: [Int: UInt64]]) -> Data {
        let keys = usage.keys.sorted().map { keyId in
            let versions = (usage[keyId] ?? [:]).sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }
            return "\(JSONValue.quote(keyId)): {\(versions.joined(separator: ", "))}"
        }
        return Data("{\"format\": \"\(tag)\", \"keys\": {\(keys.joined(separator: ",\n  "))}}\n".utf8)
    }

    /// The counts in `url`; none when the file does not exist yet. A file that
    /// exists but cannot be read is an error, never zero counts (the next
    /// write would replace it), read as the records are (`DurableFile.storedBytes`): a link to nothing is
    /// damage, not absence, and a named pipe is refused, never waited on (a review: read by name, a pipe held
    /// the store's usage queue, and so the scheduler's passes, for good, and a dangling link restarted every
    /// count from zero, putting off the rotation at 2^31 encryptions).
    static func read(_ url: URL) throws(KMSError) -> [String: [Int: UInt64]] {
        let remedy = "remove it (encryption counts start again from zero) and rotate busy keys"
        let data: Data?
        do {
            data = try DurableFile.storedBytes(url)
        } catch  where error.isDamagedRecord {
            // With this file's own remedy: `kms doctor`, which the record's message names, reads key records only
            // (the review of 89f9714).
            throw KMSError.damagedRecord(
                "\(error.detail ?? url.lastPathComponent); \(remedy)",
                message: "the server's encryption counts (key-usage.json) are damaged and cannot be read; its operator "
                    + "removes the file (the counts start again) and rotates busy keys")
        }
        guard let data else { return [:] }
        let corrupt = KMSError.internal("\(url.lastPathComponent) is corrupt: \(remedy)")
        guard case .object(let members)? = try? JSONParser.parse(data),
            members.contains(where: { $0.0 == "format" && $0.1 == .string(tag) }),
            case .object(let keys)? = members.first(where: { $0.0 == "keys" })?.1
        else { throw corrupt }
        var usage: [String: [Int: UInt64]] = [:]
        for (keyId, value) in keys {
            guard case .object(let versions) = value else { throw corrupt }
            for (name, count) in versions {
                guard let version = Int(name), case .integer(let number) = count, number >= 0 else { throw corrupt }
                usage[keyId, default: [:]][version] = UInt64(number)
            }
        }
        return usage
    }
}
