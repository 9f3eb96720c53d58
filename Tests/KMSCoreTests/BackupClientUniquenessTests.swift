import Crypto
import Foundation
import Testing

@testable import KMSCore

/// A backup's clients are refused as the backup's fault when two share a public key, or two active
/// ones a name: every client store keeps those unique, and PostgreSQL's constraint refused them
/// mid-restore as `server_busy`, which invites a retry (a review).
@Suite struct BackupClientUniquenessTests {
    let masterKey: MasterKey

    init() throws { masterKey = try MasterKey(bytes: Data(repeating: 7, count: 32)) }

    func client(_ id: String, _ name: String, key: Curve25519.Signing.PrivateKey, revoked: Bool = false) throws
        -> BackupContents.Client
    {
        let record = ClientRecord(
            clientId: id, name: name, publicKey: key.publicKey.rawRepresentation, grants: [], createdAt: Date(),
            revokedAt: revoked ? Date() : nil)
        return BackupContents.Client(
            clientId: id, sealed: try ClientRegistry.seal(record, masterKey: masterKey, revision: 0).sealed)
    }

    func opens(_ clients: [BackupContents.Client]) -> KMSError? {
        var contents = BackupContents()
        contents.clients = clients
        do throws(KMSError) {
            _ = try contents.open(with: masterKey)
            return nil
        } catch {
            return error
        }
    }

    @Test func sharedKeysAndActiveNamesAreTheBackupsFault() throws {
        let (one, two) = (Curve25519.Signing.PrivateKey(), Curve25519.Signing.PrivateKey())
        let sameKey = opens([try client("c_a", "phone", key: one), try client("c_b", "laptop", key: one)])
        #expect(sameKey?.code == .invalidRequest && sameKey?.message.contains("public key") == true)
        let sameName = opens([try client("c_a", "phone", key: one), try client("c_b", "phone", key: two)])
        #expect(sameName?.code == .invalidRequest && sameName?.message.contains("named phone") == true)
        // A revoked client's name is free again (identity-v1): not refused.
        #expect(
            opens([try client("c_a", "phone", key: one, revoked: true), try client("c_b", "phone", key: two)]) == nil)
    }

    /// `--replace-server-secrets` replaces what a first start makes: one bootstrap `admin`. A file store
    /// holding a revoked admin and an enrolled client given its name passed as that (PostgreSQL refused
    /// it; a review).
    @Test func replacingServerSecretsTakesOneBootstrapAdminOnly() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-target-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: folder.appendingPathComponent("identity\(FileBackupStore.secretSuffix)"))
        func stored(_ id: String, active: Bool) -> StoredClient {
            StoredClient(
                clientId: id, name: ClientRegistry.bootstrapName, fingerprint: "SHA256:\(id)", active: active,
                admin: active, accessKeyIds: [], sealed: Data())
        }
        func check(_ clients: [StoredClient]) throws -> KMSError? {
            let file = LocalClientStore.ClientFile(clients: clients)
            try JSONEncoder().encode(file).write(to: folder.appendingPathComponent("clients.json"))
            do throws(KMSError) {
                _ = try FileBackupStore.checkTarget(folder, replaceServerSecrets: true, masterKey: masterKey)
                return nil
            } catch {
                return error
            }
        }
        #expect(try check([stored("cli_a", active: true)]) == nil)
        let two = try check([stored("cli_a", active: false), stored("cli_b", active: true)])
        #expect(two?.message.contains("holds enrolled clients") == true, "\(String(describing: two))")
    }
}
