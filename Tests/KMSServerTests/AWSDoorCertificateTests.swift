import Foundation
import KMSCore
import Logging
import Testing

@testable import KMSServer

/// aws-kms-v1 sections 1 and 10: the self-signed certificate's span, and
/// `kms tls-cert` printing certificates only.
@Suite struct AWSDoorCertificateTests {
    func issued() async throws -> TLSCertificateLoader.Material {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: folder) }
        return try await TLSCertificateLoader.load(
            AWSConfiguration(port: 0, host: "127.0.0.1"), secrets: FileSecretBlobStore(folder: folder),
            masterKey: try MasterKey(bytes: Data(repeating: 3, count: 32)), now: Date(),
            logger: Logger(label: "test"))
    }

    @Test func theSelfSignedCertificateSpansAtMost825Days() async throws {
        let material = try await issued()
        let notAfter = try #require(AWSDoorCertificate.notAfter(pem: material.certificatePEM))
        let notBefore = try #require(AWSDoorCertificate.notBefore(pem: material.certificatePEM))
        #expect(notAfter.timeIntervalSince(notBefore) == 825 * 86_400)
    }

    @Test func aCombinedCertificateAndKeyFilePrintsTheCertificateOnly() async throws {
        let material = try await issued()
        #expect(material.keyPEM.contains("PRIVATE KEY"))
        let printed = try #require(
            AWSDoorCertificate.certificatesOnly(pem: material.keyPEM + "\n" + material.certificatePEM + "\n"))
        #expect(!printed.contains("PRIVATE KEY"))
        #expect(printed.components(separatedBy: "-----BEGIN CERTIFICATE-----").count == 2)
        #expect(AWSDoorCertificate.notAfter(pem: printed) == AWSDoorCertificate.notAfter(pem: material.certificatePEM))
        #expect(AWSDoorCertificate.certificatesOnly(pem: material.keyPEM) == nil)
        // A key block a strict parser would refuse (one long line) does not hide the certificate.
        let keyLines = material.keyPEM.split(separator: "\n").map(String.init)
        let oneLineKey = [keyLines.first ?? "", keyLines.dropFirst().dropLast().joined(), keyLines.last ?? ""]
            .joined(separator: "\n")
        #expect(AWSDoorCertificate.certificatesOnly(pem: material.certificatePEM + "\n" + oneLineKey + "\n") == printed)
        // A certificate block broken by another boundary keeps nothing of it.
        let broken = "-----BEGIN CERTIFICATE-----\n" + material.keyPEM + "-----END CERTIFICATE-----\n"
        #expect(AWSDoorCertificate.certificatesOnly(pem: broken) == nil)
        #expect(AWSDoorCertificate.certificatesOnly(pem: "not a PEM") == nil)
    }
}
