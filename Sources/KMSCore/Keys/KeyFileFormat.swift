public import Foundation
public import KMSProtocol

/// The JSON of one key record (lifecycle-v1 section 7): the file store's
/// `keys/<keyId>.json`, the PostgreSQL row's `record`, and a backup's `key`
/// line. Readable by a person, with every version's material wrapped by the
/// master key.
///
/// ```json
/// { "format": "kms-key-v2", "keyId": "key_…", "createdAt": "…", "revision": 2, "state": "enabled",
///   "rotationPeriodDays": 90, "nextRotationAt": "…", "description": "", "tags": {},
///   "versions": [ { "version": 1, "createdAt": "…", "status": "grace", "wrappedKey": "<b64>" }, … ] }
/// ```
///
/// `status` is as of the last write, for people; the server always derives
/// the live status from the clock and `KMS_KEY_GRACE_MS`. Records written by
/// earlier versions (`kms-key-v1`) read as enabled and unscheduled, and their
/// `alias` member is ignored: aliases are their own records now.
public enum KeyFileFormat {
    static let tag = "kms-key-v2"
    static let tagV1 = "kms-key-v1"

    public static func encode(_ record: KeyRecord, statusAtWrite: (Int) -> KeyVersionStatus) -> Data {
        var text = "{\n  \"format\": \"\(tag)\",\n  \"keyId\": \"\(record.keyId)\",\n"
        text += "  \"createdAt\": \"\(Timestamp.format(record.createdAt))\",\n  \"revision\": \(record.revision),\n"
        text += "  \"state\": \"\(record.state.rawValue)\",\n"
        if let date = record.deletionDate { text += "  \"deletionDate\": \"\(Timestamp.format(date))\",\n" }
        if let days = record.pendingWindowDays { text += "  \"pendingWindowDays\": \(days),\n" }
        if let days = record.rotationPeriodDays { text += "  \"rotationPeriodDays\": \(days),\n" }
        if let date = record.nextRotationAt { text += "  \"nextRotationAt\": \"\(Timestamp.format(date))\",\n" }
        text += "  \"description\": \(JSONValue.quote(record.description)),\n"
        let tags = record.tags.sorted { $0.key.bytesPrecede($1.key) }
            .map { "\(JSONValue.quote($0.key)): \(JSONValue.quote($0.value))" }
        text += "  \"tags\": {\(tags.joined(separator: ", "))},\n"
        if let policy = record.policy { text += "  \"policy\": \(JSONValue.quote(policy)),\n" }
        text += "  \"versions\": [\n"
        text += record.versions.map { version in
            "    { \"version\": \(version.version), \"createdAt\": \"\(Timestamp.format(version.createdAt))\", "
                + "\"status\": \"\(statusAtWrite(version.version).rawValue)\", "
                + "\"wrappedKey\": \"\(Base64.encode(version.wrappedMaterial))\" }"
        }.joined(separator: ",\n")
        text += "\n  ]\n}\n"
        return Data(text.utf8)
    }

    /// A stored record as every store and backup reads it: one that does not decode, or that
    /// holds another key's record, is damage (`KMSError.damagedRecord`), named by `place`
    /// ("key file keys/<id>.json", "the key row <id>") in the logged detail only.
    public static func decodeStored(_ data: Data, keyId: String, place: String) throws(KMSError) -> KeyRecord {
        let record: KeyRecord
        do {
            record = try decode(data)
        } catch {
            throw KMSError.damagedRecord("\(place) is corrupt: \(error.message)")
        }
        guard record.keyId == keyId else { throw KMSError.damagedRecord("\(place) holds another key's record") }
        return record
    }

    /// Reads a v1 or v2 record; `aliases` is left empty (the store fills it in).
    public static func decode(_ data: Data) throws(RequestFieldError) -> KeyRecord {
        var reader = try JSONObjectReader(bytes: data)
        let format = try reader.string("format")
        guard format == tag || format == tagV1 else {
            throw RequestFieldError(field: "format", message: "unknown format")
        }
        let keyId = try reader.string("keyId")
        if format == tagV1 { _ = try reader.optionalString("alias") }
        let createdAt = try date(reader.string("createdAt"), field: "createdAt")
        // Bounded well below Int.max: every update stores revision + 1, which must not overflow (a review).
        let revision = Int(try reader.integer("revision", in: 1...Int64(Int32.max) - 1))
        var lifecycle = KeyRecord(keyId: keyId, aliases: [], createdAt: createdAt, versions: [])
        if format == tag { try readLifecycle(&reader, into: &lifecycle) }
        guard case .array(let items)? = reader.take("versions") else {
            throw RequestFieldError(field: "versions", message: "versions must be an array")
        }
        try reader.finish()
        var versions: [KeyVersion] = []
        for item in items {
            var entry = try JSONObjectReader(item)
            let number = Int(try entry.integer("version", in: 1...Int64(Int32.max)))
            guard number == versions.count + 1 else {
                throw RequestFieldError(
                    field: "versions", message: "out of order (each version one more than the last)")
            }
            let created = try date(entry.string("createdAt"), field: "createdAt")
            _ = try entry.string("status")
            let wrapped = try entry.bytes("wrappedKey", maxBytes: 1024)
            try entry.finish()
            versions.append(KeyVersion(version: number, createdAt: created, wrappedMaterial: wrapped))
        }
        guard !versions.isEmpty else { throw RequestFieldError(field: "versions", message: "no versions") }
        lifecycle.versions = versions
        lifecycle.revision = revision
        return lifecycle
    }

    private static func readLifecycle(_ reader: inout JSONObjectReader, into record: inout KeyRecord)
        throws(RequestFieldError)
    {
        guard let state = KeyState(rawValue: try reader.string("state")) else {
            throw RequestFieldError(field: "state", message: "unknown state")
        }
        record.state = state
        record.deletionDate = try reader.optionalString("deletionDate").map { text throws(RequestFieldError) in
            try date(text, field: "deletionDate")
        }
        record.pendingWindowDays = try reader.optionalInteger("pendingWindowDays", in: 1...365).map { Int($0) }
        record.rotationPeriodDays = try reader.optionalInteger("rotationPeriodDays", in: 1...36500).map { Int($0) }
        record.nextRotationAt = try reader.optionalString("nextRotationAt").map { text throws(RequestFieldError) in
            try date(text, field: "nextRotationAt")
        }
        record.description = try reader.string("description")
        guard case .object(let pairs)? = reader.take("tags") else {
            throw RequestFieldError(field: "tags", message: "tags must be an object")
        }
        for (key, value) in pairs {
            guard case .string(let text) = value else {
                throw RequestFieldError(field: "tags", message: "tag values must be strings")
            }
            record.tags[key] = text
        }
        record.policy = try reader.optionalString("policy")
    }

    static func date(_ text: String, field: String) throws(RequestFieldError) -> Date {
        guard let date = Timestamp.parse(text) else { throw RequestFieldError(field: field, message: "bad time") }
        return date
    }
}
