import ArgumentParser
import Foundation
import KMSCore
import KMSPostgres
import KMSServer
import Logging

/// `kms tls-cert`: the AWS door's certificate in PEM, for `AWS_CA_BUNDLE`
/// (aws-kms-v1 rule 10.1). Never prints a private key.
struct TLSCertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls-cert",
        abstract: "Print the AWS door's TLS certificate (PEM), for AWS_CA_BUNDLE.",
        discussion: """
            Runs with the server's configuration once the server has started with KMS_AWS_PORT set: the \
            configured KMS_TLS_CERT_FILE chain, or the self-signed certificate kept in the store.
            """)

    func run() async throws {
        let config = try KMSConfiguration.forCommand()
        if let file = config.aws?.certificateFile {
            guard let pem = try? String(contentsOf: file, encoding: .utf8) else {
                throw ValidationError("cannot read \(file.path) (KMS_TLS_CERT_FILE)")
            }
            guard let certificates = AWSDoorCertificate.certificatesOnly(pem: pem) else {
                throw ValidationError("\(file.path) holds no PEM certificate")
            }
            printPEM(certificates)
            return
        }
        let (_, masterKey, database) = try await BackupSetup.open(label: "kms-tls-cert")
        defer { database?.shutdown() }
        let secrets = BackupSetup.secrets(config, database)
        guard let pem = try await AWSDoorCertificate.stored(secrets: secrets, masterKey: masterKey) else {
            throw ValidationError("no certificate yet: start kms serve with KMS_AWS_PORT set once")
        }
        printPEM(pem)
    }
}
