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

    // Each call has the deadline every store call has (`PostgresDatabase.withDeadline`): these run at
    // start-up, which a database that stops answering would otherwise hold until TCP gives up (a review).

    public func blob(named name: String) async throws(KMSError) -> Data? {
        let (client, logger, table) = (database.client, database.logger, database.table("secrets"))
        return try await database.withDeadline("read secret") {
            for try await wrapped in try await client.query(
                "SELECT wrapped FROM \(unescaped: table) WHERE name = \(name)", logger: logger
            ).decode(Data.self) {
                return wrapped
            }
            return nil
        }
    }

    public func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data {
        let (client, logger, table) = (database.client, database.logger, database.table("secrets"))
        _ = try await database.withDeadline("replace secret") {
            try await client.query(
                "UPDATE \(unescaped: table) SET wrapped = \(wrapped) WHERE name = \(name) AND wrapped = \(expected)",
                logger: logger)
        }
        guard let stored = try await blob(named: name) else { throw KMSError.internal("secret \(name) vanished") }
        return stored
    }

    public func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data {
        let (client, logger, table) = (database.client, database.logger, database.table("secrets"))
        _ = try await database.withDeadline("store secret") {
            try await client.query(
                "INSERT INTO \(unescaped: table) (name, wrapped) VALUES (\(name), \(wrapped)) ON CONFLICT DO NOTHING",
                logger: logger)
        }
        guard let stored = try await blob(named: name) else { throw KMSError.internal("secret \(name) vanished") }
        return stored
    }
}
