import ArgumentParser
import Foundation
import KMSCore
import KMSPostgres
import KMSServer
import Logging

/// `kms server-key`: prints the identity key's fingerprint from the key store,
/// without a running server, so a person can pin it in clients.
struct ServerKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server-key",
        abstract: "Print the server identity key fingerprint (and, with --pem, its public key) from the key store."
    )

    @Flag(help: "Also print the public key as PEM.")
    var pem = false

    func run() async throws {
        // Only reads: where no master key is configured there is no identity key either. On PostgreSQL the
        // identity key is in the database (a review: this read ./data/keys only, which no start there makes).
        let (config, masterKey, database) = try await BackupSetup.open(label: "kms-server-key")
        defer { database?.shutdown() }
        guard
            let identity = try await IdentityKeyLoader.loadExisting(
                store: BackupSetup.secrets(config, database), masterKey: masterKey)
        else {
            let store =
                database == nil
                ? "\(config.keyStorePath.path)" : "the database (KMS_DATABASE_URL, KMS_DATABASE_PREFIX)"
            throw ValidationError("no identity key in \(store) yet; start `kms serve` once to create it")
        }
        printShown(identity.fingerprint)
        if pem { printPEM(identity.publicKeyPEM) }
    }
}
