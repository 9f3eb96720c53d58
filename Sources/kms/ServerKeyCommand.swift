import ArgumentParser
import Foundation
import KMSCore
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
        let config = try KMSConfiguration.forCommand()
        // Only reads: where no master key is configured there is no identity key either.
        guard
            let masterKey = try MasterKeyLoader.loadExisting(
                base64: config.masterKeyBase64, file: config.masterKeyFile)
        else {
            throw ValidationError(
                "no master key at \(config.masterKeyFile.path) (KMS_MASTER_KEY_FILE); run this where `kms serve` runs")
        }
        let store = FileSecretBlobStore(folder: config.keyStorePath)
        guard let identity = try await IdentityKeyLoader.loadExisting(store: store, masterKey: masterKey) else {
            throw ValidationError(
                "no identity key in \(config.keyStorePath.path) yet; start `kms serve` once to create it")
        }
        printShown(identity.fingerprint)
        if pem { printPEM(identity.publicKeyPEM) }
    }
}
