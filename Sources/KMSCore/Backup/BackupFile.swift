import Crypto
public import Foundation
import KMSProtocol

/// The backup file of lifecycle-v1 section 6 and rule 9.8: UTF-8 JSON Lines,
/// each ending with one LF. Line 1 is the header; then one line per key,
/// alias, secret, client and access key, each with fixed members whichever
/// store wrote it; the last is the manifest with the counts, the SHA-256 of
/// every preceding byte (checkable without the master key) and their
/// HMAC-SHA256 under a key derived from the master key (made under this
/// master key, unedited).
public enum BackupFile {
    public static let format = "kms-backup-v1"
    /// The content's schema: record kms-key-v2 and alias records (the same for both stores).
    public static let schemaVersion = 2
    static let macInfo = "kms-v1/backup-manifest"

    /// The file's bytes. Every wrapped value is opened first: a backup that
    /// could not be restored is never written.
    public static func encode(_ contents: BackupContents, store: String, createdAt: Date, masterKey: MasterKey)
        throws(KMSError) -> Data
    {
        let (accessKeys, counts) = try contents.open(with: masterKey)
        var lines: [JSONValue] = [
            .object([
                ("format", .string(format)), ("createdAt", .string(Timestamp.format(createdAt))),
                ("store", .string(store)), ("schemaVersion", .integer(Int64(schemaVersion))),
            ])
        ]
        for key in contents.keys {
            let record = KeyFileFormat.encode(key) { number in key.versions.count == number ? .active : .grace }
            guard case .object(let members) = try? JSONParser.parse(record) else {
                throw KMSError.internal("a key record does not re-read")
            }
            lines.append(.object([("type", .string("key"))] + members))
        }
        for alias in contents.aliases {
            lines.append(
                .object([
                    ("type", .string("alias")), ("alias", .string(alias.alias)), ("keyId", .string(alias.keyId)),
                    ("createdAt", .string(Timestamp.format(alias.createdAt))),
                    ("updatedAt", .string(Timestamp.format(alias.updatedAt))),
                ]))
        }
        for secret in contents.secrets {
            lines.append(
                .object([
                    ("type", .string("secret")), ("name", .string(secret.name)),
                    ("wrapped", .string(Base64.encode(secret.wrapped))),
                ]))
        }
        for client in contents.clients {
            lines.append(
                .object([
                    ("type", .string("client")), ("clientId", .string(client.clientId)),
                    ("sealed", .string(Base64.encode(client.sealed))),
                ]))
        }
        for key in accessKeys {
            lines.append(
                .object([
                    ("type", .string("accessKey")), ("clientId", .string(key.clientId)),
                    ("accessKeyId", .string(key.accessKeyId)), ("wrapped", .string(Base64.encode(key.wrapped))),
                ]))
        }
        var body = Data()
        for line in lines { body.append(contentsOf: Array((line.serialized() + "\n").utf8)) }
        let manifest = JSONValue.object([
            ("type", .string("manifest")),
            ("counts", .object(counts.members.map { ($0.0, .integer(Int64($0.1))) })),
            ("sha256", .string(hex(SHA256.hash(data: body)))),
            ("mac", .string(hex(HMAC<SHA256>.authenticationCode(for: body, using: masterKey.derived(info: macInfo))))),
        ])
        body.append(contentsOf: Array((manifest.serialized() + "\n").utf8))
        return body
    }

    /// The longest manifest line read (one holds a type, two hex digests and six counts).
    static let manifestMaxBytes = 4096

    /// What a backup file holds, after every check of section 6: the
    /// header, the SHA-256 and the MAC of the manifest, every line's shape,
    /// every wrapped value opening, and the counts.
    /// `createdAt`: the header's, nil when it is not a timestamp (restore records it: how far back a
    /// restore went).
    public static func decode(_ data: Data, masterKey: MasterKey) throws(KMSError) -> (
        contents: BackupContents, counts: BackupContents.Counts, store: String, createdAt: Date?
    ) {
        guard data.last == 0x0A, let manifestStart = data.dropLast().lastIndex(of: 0x0A).map({ $0 + 1 }) else {
            throw refused("it is not a kms backup (no manifest line)")
        }
        let body = data[data.startIndex..<manifestStart]
        // The manifest is outside the SHA-256 and the MAC: one JSON Lines line as written, `{` to `}` and a
        // lone LF, not a JSON text with any whitespace around it or a CR (a probe restored those).
        let manifestLine = data[manifestStart..<(data.endIndex - 1)]
        // A manifest is a few hundred bytes; one of 300 MiB took 22 s and 1.2 GB to parse before its
        // SHA-256 refused it (a review): it is outside the MAC, so anyone can make it any size.
        guard manifestLine.count <= Self.manifestMaxBytes else {
            throw refused("the manifest line is longer than \(Self.manifestMaxBytes) bytes: not a kms backup's")
        }
        guard manifestLine.first == UInt8(ascii: "{"), manifestLine.last == UInt8(ascii: "}"),
            !manifestLine.contains(0x0D)
        else { throw refused("the manifest is not one line from { to } ending in a lone LF") }
        var manifest = try reader(data[manifestStart...], line: "manifest")
        try field { () throws(RequestFieldError) in
            guard try manifest.string("type") == "manifest" else {
                throw RequestFieldError(field: "type", message: "the last line is not the manifest")
            }
        }
        let sha = try field { () throws(RequestFieldError) in try manifest.string("sha256") }
        let mac = try field { () throws(RequestFieldError) in try manifest.string("mac") }
        guard ConstantTime.equal(sha, hex(SHA256.hash(data: body))) else {
            throw refused("its SHA-256 does not match: the file was changed or truncated")
        }
        let expectedMac = hex(HMAC<SHA256>.authenticationCode(for: body, using: masterKey.derived(info: macInfo)))
        guard ConstantTime.equal(mac, expectedMac) else {
            throw refused("its MAC does not match: it was made under another master key, or edited")
        }
        var counts = BackupContents.Counts()
        guard case .object(let pairs)? = manifest.take("counts") else { throw refused("the manifest has no counts") }
        // Rule 9.8: exactly the six counts, each an integer. A member of another type was dropped before
        // the count of members was compared, so an extra one passed (a review; the manifest line is not
        // under the MAC, so anyone could add it).
        guard pairs.allSatisfy({ if case .integer = $0.1 { true } else { false } }) else {
            throw refused("the manifest's counts must all be integers")
        }
        let stated = Dictionary(
            pairs.compactMap { pair -> (String, Int)? in
                if case .integer(let value) = pair.1 { return (pair.0, Int(value)) } else { return nil }
            }, uniquingKeysWith: { first, _ in first })
        try field { () throws(RequestFieldError) in try manifest.finish() }

        var lines = body.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
        guard let first = lines.first else { throw refused("it has no header") }
        lines = lines.dropFirst()
        var header = try reader(first, line: "header")
        let (store, createdAt) = try field { () throws(RequestFieldError) -> (String, String) in
            guard try header.string("format") == format else {
                throw RequestFieldError(field: "format", message: "not \(format)")
            }
            let createdAt = try header.string("createdAt")
            let store = try header.string("store")
            guard try header.integer("schemaVersion", in: 1...1000) == Int64(schemaVersion) else {
                throw RequestFieldError(field: "schemaVersion", message: "schema \(schemaVersion) expected")
            }
            try header.finish()
            return (store, createdAt)
        }
        var contents = BackupContents()
        var accessKeys: [BackupContents.AccessKey] = []
        for (index, line) in lines.enumerated() {
            try parse(line, number: index + 2, into: &contents, accessKeys: &accessKeys)
        }
        // Each record once: a store would refuse the second mid-restore, in its own words.
        for (what, names) in [
            ("key", contents.keys.map(\.keyId)), ("alias", contents.aliases.map(\.alias)),
            ("secret", contents.secrets.map(\.name)), ("client", contents.clients.map(\.clientId)),
            ("access key", accessKeys.map(\.accessKeyId)),
        ] {
            var seen = Set<String>()
            if let twice = names.first(where: { !seen.insert($0).inserted }) {
                throw refused("the \(what) \(twice) has two lines")
            }
        }
        let opened = try contents.open(with: masterKey)
        counts = opened.counts
        // Section 6 fixes what each line holds, not the lines' order.
        func sorted(_ keys: [BackupContents.AccessKey]) -> [BackupContents.AccessKey] {
            keys.sorted { ($0.clientId, $0.accessKeyId) < ($1.clientId, $1.accessKeyId) }
        }
        guard sorted(opened.accessKeys) == sorted(accessKeys) else {
            throw refused("its access-key lines disagree with the client records")
        }
        let countsMatch = counts.members.allSatisfy { stated[$0.0] == $0.1 } && stated.count == counts.members.count
        guard countsMatch else { throw refused("its counts do not match its lines") }
        // Aliases are records: each key's list comes from the alias lines.
        var byKey: [String: [String]] = [:]
        for alias in contents.aliases { byKey[alias.keyId, default: []].append(alias.alias) }
        contents.keys = contents.keys.map { $0.withAliases(byKey[$0.keyId] ?? []) }
        return (contents, counts, store, Timestamp.parse(createdAt))
    }

    private static func parse(
        _ line: Data.SubSequence, number: Int, into contents: inout BackupContents,
        accessKeys: inout [BackupContents.AccessKey]
    ) throws(KMSError) {
        var object = try reader(line, line: "line \(number)")
        let type = try field { () throws(RequestFieldError) in try object.string("type") }
        do throws(RequestFieldError) {
            switch type {
            case "key":
                guard case .object(let members)? = try? JSONParser.parse(Data(line)) else { return }
                let record = JSONValue.object(members.filter { $0.0 != "type" }).serialized()
                let key = try KeyFileFormat.decode(Data(record.utf8))
                // Names become file names in the file store: only the grammar of section 3 passes.
                guard KeyIdentifier.isKeyId(key.keyId) else {
                    throw RequestFieldError(field: "keyId", message: "is not a key id (key_ and URL-safe base64)")
                }
                // What the API would have let a key hold (lifecycle-v1 sections 4 and 7): a probe holding the
                // master key restored a 50 MB description, one with terminal escapes, and 200,000 tags.
                try LabelRules.checkDescription(key.description)
                try LabelRules.checkTags(key.tags, setField: "tags")
                contents.keys.append(key)
            case "alias":
                let alias = AliasRecord(
                    alias: try object.string("alias"), keyId: try object.string("keyId"),
                    createdAt: try KeyFileFormat.date(object.string("createdAt"), field: "createdAt"),
                    updatedAt: try KeyFileFormat.date(object.string("updatedAt"), field: "updatedAt"))
                try object.finish()
                // Aliases named generate or rotate before those were reserved are kept (rule 9.3).
                guard KeyIdentifier.isAliasSyntax(alias.alias) else {
                    throw RequestFieldError(
                        field: "alias", message: "is not an alias ([A-Za-z0-9][A-Za-z0-9._-]{0,63}, not key_…)")
                }
                guard KeyIdentifier.isKeyId(alias.keyId) else {
                    throw RequestFieldError(field: "keyId", message: "is not a key id (key_ and URL-safe base64)")
                }
                contents.aliases.append(alias)
            case "secret":
                let secret = BackupContents.Secret(
                    name: try object.string("name"), wrapped: try object.bytes("wrapped", maxBytes: 1 << 20))
                try object.finish()
                guard FileKeyStore.isSafeName(secret.name) else {
                    throw RequestFieldError(field: "name", message: "is not a secret name")
                }
                contents.secrets.append(secret)
            case "client":
                let client = BackupContents.Client(
                    clientId: try object.string("clientId"), sealed: try object.bytes("sealed", maxBytes: 1 << 20))
                try object.finish()
                contents.clients.append(client)
            case "accessKey":
                let key = BackupContents.AccessKey(
                    clientId: try object.string("clientId"), accessKeyId: try object.string("accessKeyId"),
                    wrapped: try object.bytes("wrapped", maxBytes: 4096))
                try object.finish()
                accessKeys.append(key)
            default:
                throw RequestFieldError(field: "type", message: "unknown line type \(type)")
            }
        } catch {
            throw refused("line \(number) (\(type)): \(error.field ?? "") \(error.message)")
        }
    }

    private static func reader(_ bytes: Data.SubSequence, line: String) throws(KMSError) -> JSONObjectReader {
        do {
            return try JSONObjectReader(bytes: Data(bytes.last == 0x0A ? bytes.dropLast() : bytes))
        } catch {
            throw refused("its \(line) is not a JSON object: \(error.message)")
        }
    }

    private static func field<T>(_ body: () throws(RequestFieldError) -> T) throws(KMSError) -> T {
        do {
            return try body()
        } catch {
            throw refused("\(error.field ?? "a member"): \(error.message)")
        }
    }

    static func refused(_ why: String) -> KMSError {
        KMSError(.invalidRequest, "the backup is refused: \(why)")
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String { SigV4.hex(digest) }
}
