public import Foundation
public import KMSProtocol

/// The JSON of one key file, `keys/<keyId>.json`: readable by a person,
/// with every version's material wrapped by the master key.
///
/// ```json
/// { "format": "kms-key-v1", "keyId": "key_…", "alias": "photos", "createdAt": "…", "revision": 2,
///   "versions": [ { "version": 1, "createdAt": "…", "status": "grace", "wrappedKey": "<b64>" }, … ] }
/// ```
///
/// `status` is as of the last write, for people; the server always derives
/// the live status from the clock and `KMS_KEY_GRACE_MS`.
public enum KeyFileFormat {
    static let tag = "kms-key-v1"

    public static func encode(_ record: KeyRecord, statusAtWrite: (Int) -> KeyVersionStatus) -> Data {
        var text = "{\n  \"format\": \"\(tag)\",\n  \"keyId\": \"\(record.keyId)\",\n"
        if let alias = record.alias { text += "  \"alias\": \"\(alias)\",\n" }
        text += "  \"createdAt\": \"\(Timestamp.format(record.createdAt))\",\n  \"revision\": \(record.revision),\n"
        text += "  \"versions\": [\n"
        text += record.versions.map { version in
            "    { \"version\": \(version.version), \"createdAt\": \"\(Timestamp.format(version.createdAt))\", "
                + "\"status\": \"\(statusAtWrite(version.version).rawValue)\", "
                + "\"wrappedKey\": \"\(Base64.encode(version.wrappedMaterial))\" }"
        }.joined(separator: ",\n")
        text += "\n  ]\n}\n"
        return Data(text.utf8)
    }

    public static func decode(_ data: Data) throws(RequestFieldError) -> KeyRecord {
        var reader = try JSONObjectReader(bytes: data)
        guard try reader.string("format") == tag else {
            throw RequestFieldError(field: "format", message: "unknown format")
        }
        let keyId = try reader.string("keyId")
        let alias = try reader.optionalString("alias")
        let createdAt = try date(reader.string("createdAt"), field: "createdAt")
        let revision = Int(try reader.integer("revision", in: 1...Int64.max))
        guard case .array(let items)? = reader.take("versions") else {
            throw RequestFieldError(field: "versions", message: "versions must be an array")
        }
        try reader.finish()
        var versions: [KeyVersion] = []
        for item in items {
            var entry = try JSONObjectReader(item)
            let number = Int(try entry.integer("version", in: 1...Int64(Int32.max)))
            guard number == versions.count + 1 else {
                throw RequestFieldError(field: "versions", message: "versions out of order")
            }
            let created = try date(entry.string("createdAt"), field: "createdAt")
            _ = try entry.string("status")
            let wrapped = try entry.bytes("wrappedKey", maxBytes: 1024)
            try entry.finish()
            versions.append(KeyVersion(version: number, createdAt: created, wrappedMaterial: wrapped))
        }
        guard !versions.isEmpty else { throw RequestFieldError(field: "versions", message: "no versions") }
        return KeyRecord(keyId: keyId, alias: alias, createdAt: createdAt, versions: versions, revision: revision)
    }

    private static func date(_ text: String, field: String) throws(RequestFieldError) -> Date {
        guard let date = Timestamp.parse(text) else { throw RequestFieldError(field: field, message: "bad time") }
        return date
    }
}
