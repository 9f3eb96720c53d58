public import Foundation

/// Named secrets of the server itself (identity key, audit key), stored
/// wrapped by the master key. Shared by every instance when the store is.
///
/// Contract: `createBlob` is create-if-absent — when a blob of that name
/// exists already it is kept and returned, so instances starting together
/// agree on one key.
public protocol SecretBlobStore: Sendable {
    func blob(named name: String) async throws(KMSError) -> Data?
    /// Stores `wrapped` unless the name exists; returns the blob that is stored.
    func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data
    /// Replaces the blob if it is still `expected` (compare-and-set: of
    /// instances replacing together one wins); returns the blob that is stored.
    func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data
}

/// Names of server secrets that code outside the loader that makes them needs.
public enum ServerSecrets {
    /// The AWS door's certificate and key (aws-kms-v1), made at its first start: `kms migrate` keeps a
    /// destination's own instead of refusing it.
    public static let awsDoorTLS = "tls-ecdsa-p256"
}
