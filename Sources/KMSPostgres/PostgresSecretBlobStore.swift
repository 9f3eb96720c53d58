import Foundation
public import KMSCore
import PostgresNIO

/// `SecretBlobStore` in PostgreSQL: the identity and audit keys every
/// instance shares (wrapped by the master key every instance is given).
public final class PostgresSecretBlobStore: SecretBlobStore {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) {
        self.database = database
    }

    public func blob(named name: String) async throws(KMSError) -> Data? {
        do {
            for try await wrapped in try await database.client.query(
                "SELECT wrapped FROM \(unescaped: database.table("secrets")) WHERE name = \(name)",
                logger: database.logger
            ).decode(Data.self) {
                return wrapped
            }
            return nil
        } catch {
            throw PostgresDatabase.unavailable(error, "read secret")
        }
    }

    public func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data {
        do {
            try await database.client.query(
                "UPDATE \(unescaped: database.table("secrets")) SET wrapped = \(wrapped) WHERE name = \(name) AND wrapped = \(expected)",
                logger: database.logger)
        } catch {
            throw PostgresDatabase.unavailable(error, "replace secret")
        }
        guard let stored = try await blob(named: name) else { throw KMSError.internal("secret \(name) vanished") }
        return stored
    }

    public func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data {
        do {
            try await database.client.query(
                "INSERT INTO \(unescaped: database.table("secrets")) (name, wrapped) VALUES (\(name), \(wrapped)) ON CONFLICT DO NOTHING",
                logger: database.logger)
        } catch {
            throw PostgresDatabase.unavailable(error, "store secret")
        }
        guard let stored = try await blob(named: name) else { throw KMSError.internal("secret \(name) vanished") }
        return stored
    }
}
