import Foundation
import Synchronization

/// `KeyStore` in process memory (tests, and the reference for the contract).
public final class InMemoryKeyStore: KeyStore {
    private struct State {
        var keys: [String: KeyRecord] = [:]
        var aliases: [String: String] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func create(_ record: KeyRecord) async throws(KMSError) {
        try state.withLock { state throws(KMSError) in
            guard state.keys[record.keyId] == nil else { throw KMSError.internal("duplicate key id") }
            if let alias = record.alias {
                guard state.aliases[alias] == nil else { throw KMSError.aliasInUse(alias) }
                state.aliases[alias] = record.keyId
            }
            state.keys[record.keyId] = record
        }
    }

    public func key(id: String) async throws(KMSError) -> KeyRecord? {
        state.withLock { $0.keys[id] }
    }

    public func key(alias: String) async throws(KMSError) -> KeyRecord? {
        state.withLock { state in state.aliases[alias].flatMap { state.keys[$0] } }
    }

    public func update(_ record: KeyRecord, expectedRevision: Int) async throws(KMSError) -> KeyUpdate {
        try state.withLock { state throws(KMSError) in
            guard let current = state.keys[record.keyId] else { throw KMSError.internal("update of a missing key") }
            guard current.revision == expectedRevision else { return .conflict }
            var stored = record
            stored.revision = expectedRevision + 1
            state.keys[record.keyId] = stored
            return .updated(stored)
        }
    }

    public func list(after: String?, limit: Int) async throws(KMSError) -> [KeyRecord] {
        state.withLock { state in
            state.keys.keys.filter { after == nil || $0 > after ?? "" }.sorted().prefix(limit).compactMap {
                state.keys[$0]
            }
        }
    }

    public func count() async throws(KMSError) -> Int {
        state.withLock { $0.keys.count }
    }
}
