import Foundation
import KMSProtocol

/// Aliases by name and by key, in memory: the file store's index, kept
/// current by its writes.
struct AliasIndex: Sendable {
    private(set) var byName: [String: AliasRecord] = [:]
    /// Alias files that cannot be read as one, with why: the alias is answered as damaged, never as
    /// absent, and no list of aliases is made while one is (a review: a corrupt alias file made the
    /// alias vanish at run time and from backups, `kms backup` exit 0).
    var damaged: [String: String] = [:]
    private var byKey: [String: Set<String>] = [:]
    /// Every name in byte order, kept so by `set` and `remove`: a page starts at a binary search (a
    /// review: sorting every name for each page made listing for a client that reads few keys quadratic,
    /// 6.6 s of CPU for one `GET /aliases` at 10,000 aliases, on the store's queue).
    private var ordered: [String] = []

    mutating func set(_ record: AliasRecord) {
        remove(record.alias)
        byName[record.alias] = record
        byKey[record.keyId, default: []].insert(record.alias)
        ordered.insert(record.alias, at: Self.firstIndex(in: ordered) { !$0.bytesPrecede(record.alias) })
    }

    mutating func remove(_ alias: String) {
        guard let old = byName.removeValue(forKey: alias) else { return }
        byKey[old.keyId]?.remove(alias)
        if byKey[old.keyId]?.isEmpty == true { byKey[old.keyId] = nil }
        let index = Self.firstIndex(in: ordered) { !$0.bytesPrecede(alias) }
        if index < ordered.count, ordered[index].bytesEqual(alias) { ordered.remove(at: index) }
    }

    /// The first index of sorted `names` where `isAtOrPast` holds (it must hold for every name after).
    private static func firstIndex(in names: [String], where isAtOrPast: (String) -> Bool) -> Int {
        var (low, high) = (0, names.count)
        while low < high {
            let middle = (low + high) / 2
            if isAtOrPast(names[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    func names(of keyId: String) -> [String] {
        (byKey[keyId] ?? []).sorted { $0.bytesPrecede($1) }
    }

    func page(after: String?, limit: Int, keyId: String?) -> [AliasRecord] {
        if let keyId {
            // At most a key's aliases (lifecycle-v1: 50).
            return (byKey[keyId] ?? []).filter { name in after.map { $0.bytesPrecede(name) } ?? true }
                .sorted { $0.bytesPrecede($1) }.prefix(limit).compactMap { byName[$0] }
        }
        let start = after.map { after in Self.firstIndex(in: ordered) { after.bytesPrecede($0) } } ?? 0
        return ordered[start..<min(ordered.count, start + max(0, limit))].compactMap { byName[$0] }
    }
}

/// One alias file, `aliases/<alias>` (lifecycle-v1 section 7):
/// `{"format": "kms-alias-v1", "alias", "keyId", "createdAt", "updatedAt"}`.
/// Files written before aliases were records hold a bare key id.
enum AliasFileFormat {
    static let tag = "kms-alias-v1"

    static func encode(_ record: AliasRecord) -> Data {
        Data(
            ("{\"format\": \"\(tag)\", \"alias\": \"\(record.alias)\", \"keyId\": \"\(record.keyId)\", "
                + "\"createdAt\": \"\(Timestamp.format(record.createdAt))\", "
                + "\"updatedAt\": \"\(Timestamp.format(record.updatedAt))\"}\n").utf8)
    }

    /// The key id and, for a v2 file, the whole record; nil when unreadable.
    static func decode(_ data: Data, alias: String) -> (keyId: String, record: AliasRecord?)? {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("{") else {
            return KeyIdentifier.isKeyId(text) ? (text, nil) : nil
        }
        do {
            var reader = try JSONObjectReader(bytes: data)
            guard try reader.string("format") == tag, try reader.string("alias") == alias else { return nil }
            let keyId = try reader.string("keyId")
            let created = try KeyFileFormat.date(reader.string("createdAt"), field: "createdAt")
            let updated = try KeyFileFormat.date(reader.string("updatedAt"), field: "updatedAt")
            try reader.finish()
            return (keyId, AliasRecord(alias: alias, keyId: keyId, createdAt: created, updatedAt: updated))
        } catch {
            return nil
        }
    }
}
