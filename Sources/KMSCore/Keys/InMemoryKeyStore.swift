public import Foundation
import Synchronization

/// `KeyStore` in process memory (tests, and the reference for the contract).
public final class InMemoryKeyStore: KeyStore {
    private struct State {
        var keys: [String: KeyRecord] = [:]
        var aliases: [String: AliasRecord] = [:]
        var encryptions: [String: [Int: UInt64]] = [:]

        func attached(_ record: KeyRecord?) -> KeyRecord? {
            record.map { record in record.withAliases(aliases.values.filter { $0.keyId == record.keyId }.map(\.alias)) }
        }
    }

    private let state = Mutex(State())

    public init() {}

    public func create(_ record: KeyRecord) async throws(KMSError) {
        try state.withLock { state throws(KMSError) in
            guard state.keys[record.keyId] == nil else { throw KMSError.internal("duplicate key id") }
            for alias in record.aliases where state.aliases[alias] != nil { throw KMSError.aliasInUse(alias) }
            for alias in record.aliases {
                state.aliases[alias] = AliasRecord(
                    alias: alias, keyId: record.keyId, createdAt: record.createdAt, updatedAt: record.createdAt)
            }
            state.keys[record.keyId] = record
        }
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        state.withLock { $0.attached($0.keys[id]) }
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        state.withLock { state in state.attached(state.aliases[alias].flatMap { state.keys[$0.keyId] }) }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try state.withLock { state throws(KMSError) in
            guard let current = state.keys[record.keyId], current.revision == expectedRevision else { return .conflict }
            var stored = record
            stored.revision = expectedRevision + 1
            state.keys[record.keyId] = stored
            return .updated(state.attached(stored) ?? stored)
        }
    }

    public func delete(keyId: String, expectedRevision: Int, now: Date) async throws(KMSError) -> Bool {
        state.withLock { state in
            guard let current = state.keys[keyId], current.revision == expectedRevision,
                current.isDueForDeletion(at: now)
            else { return false }
            state.aliases = state.aliases.filter { $0.value.keyId != keyId }
            state.keys[keyId] = nil
            state.encryptions[keyId] = nil
            return true
        }
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        state.withLock { state in
            state.keys.keys.filter { after == nil || $0 > after ?? "" }.sorted().prefix(limit).compactMap {
                state.attached(state.keys[$0])
            }
        }
    }

    public func count() async throws(KMSError) -> Int {
        state.withLock { $0.keys.count }
    }

    public func due(now: Date, limit: Int) async throws(KMSError) -> [DueKey] {
        state.withLock { state in
            state.keys.values.filter { $0.isDueForDeletion(at: now) || $0.isDueForRotation(at: now) }
                .sorted { $0.keyId < $1.keyId }.prefix(limit).compactMap { state.attached($0) }.map(DueKey.readable)
        }
    }

    public func addEncryptions(_ counts: [String: [Int: UInt64]]) async throws(KMSError) -> [String: [Int: UInt64]] {
        state.withLock { state in
            var totals: [String: [Int: UInt64]] = [:]
            for (keyId, versions) in counts where state.keys[keyId] != nil {
                for (version, count) in versions {
                    let total = (state.encryptions[keyId]?[version] ?? 0).addingEncryptions(count)
                    state.encryptions[keyId, default: [:]][version] = total
                    totals[keyId, default: [:]][version] = total
                }
            }
            return totals
        }
    }

    public func alias(_ name: String) async throws(KMSError) -> AliasRecord? {
        state.withLock { $0.aliases[name] }
    }

    public func createAlias(_ record: AliasRecord, copying: Bool) async throws(KMSError) {
        try state.withLock { state throws(KMSError) in
            if let refusal = KMSError.refusalToTakeAlias(state.keys[record.keyId], copying: copying) { throw refusal }
            guard state.aliases[record.alias] == nil else { throw KMSError.aliasInUse(record.alias) }
            state.aliases[record.alias] = record
        }
    }

    public func moveAlias(_ alias: String, expectedKeyId: String, to keyId: String, at now: Date)
        async throws(KMSError) -> Bool
    {
        try state.withLock { state throws(KMSError) in
            guard var record = state.aliases[alias], record.keyId == expectedKeyId else { return false }
            if let refusal = KMSError.refusalToTakeAlias(state.keys[keyId]) { throw refusal }
            record.keyId = keyId
            record.updatedAt = now
            state.aliases[alias] = record
            return true
        }
    }

    public func deleteAlias(_ alias: String, expectedKeyId: String) async throws(KMSError) -> Bool {
        state.withLock { state in
            guard state.aliases[alias]?.keyId == expectedKeyId else { return false }
            state.aliases[alias] = nil
            return true
        }
    }

    public func listAliases(after: String?, limit: Int, keyId: String?) async throws(KMSError) -> [AliasRecord] {
        state.withLock { state in
            state.aliases.values.filter { record in
                (after.map { $0.bytesPrecede(record.alias) } ?? true) && (keyId.map { $0 == record.keyId } ?? true)
            }.sorted { $0.alias.bytesPrecede($1.alias) }.prefix(limit).map { $0 }
        }
    }
}
