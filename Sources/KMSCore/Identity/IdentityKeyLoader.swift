import Foundation
public import Logging

/// Loads the server identity key from a `SecretBlobStore`, generating and
/// storing it on first start. The key is stored wrapped by the master key.
public enum IdentityKeyLoader {
    /// Blob name and AAD of the wrapped identity key.
    public static let blobName = "identity-rsa-4096"

    static let aad = "kms-v1/secret/\(blobName)"

    /// Whether `wrapped`, the stored identity blob, opens under `masterKey`: a decryption that fails is
    /// false, nothing else is read (a start that made a master key asks this of bytes it read once, so
    /// a storage error cannot pass for "another master key": a review).
    public static func opens(_ wrapped: Data, under masterKey: MasterKey) -> Bool {
        (try? masterKey.unwrap(wrapped, aad: aad)) != nil
    }

    /// The stored key, or nil when none was created yet.
    public static func loadExisting(store: some SecretBlobStore, masterKey: MasterKey) async throws(KMSError)
        -> IdentityKey?
    {
        guard let wrapped = try await store.blob(named: blobName) else { return nil }
        return try IdentityKey.load(der: try masterKey.unwrap(wrapped, aad: aad))
    }

    /// Stores `key` as the identity of a store that has none yet (create-if-absent):
    /// moving a server identity into a new store, and tests that start many
    /// servers without paying an RSA-4096 generation for each.
    public static func seed(_ key: IdentityKey, store: some SecretBlobStore, masterKey: MasterKey)
        async throws(KMSError)
    {
        _ = try await store.createBlob(named: blobName, wrapped: try masterKey.wrap(key.privateKeyDER, aad: aad))
    }

    /// The start-up loader: the stored key, or a new one stored for every
    /// later start (and every other instance on a shared store). `created`:
    /// this call stored the key it made (not another instance's, nor the one
    /// there), which a store that was started before must warn about: its
    /// clients pinned the key that was lost.
    public static func loadOrCreate(
        store: some SecretBlobStore, masterKey: MasterKey, logger: Logger
    ) async throws(StartupFailure) -> (key: IdentityKey, created: Bool) {
        do throws(KMSError) {
            if let existing = try await loadExisting(store: store, masterKey: masterKey) { return (existing, false) }
            logger.notice("generating the RSA-4096 server identity key (takes about a second)")
            let generated = try IdentityKey.generate()
            let wrapped = try masterKey.wrap(generated.privateKeyDER, aad: aad)
            // Another instance may have stored one first: the stored one wins (create-if-absent).
            let stored = try await store.createBlob(named: blobName, wrapped: wrapped)
            return (try IdentityKey.load(der: try masterKey.unwrap(stored, aad: aad)), stored == wrapped)
        } catch {
            // The wrong master key for this store: a restart cannot fix it, so exit 78, which the unit does not
            // restart (an operator's review: exit 1, and systemd restarted it every 2 s).
            guard !error.secretDidNotOpen else {
                throw StartupFailure(
                    description:
                        "the master key does not open this store's server identity key: it is not this store's master key (KMS_MASTER_KEY, KMS_MASTER_KEY_FILE), or the identity key is damaged; nothing was written",
                    isConfiguration: true)
            }
            throw StartupFailure("identity key", error)
        }
    }
}
