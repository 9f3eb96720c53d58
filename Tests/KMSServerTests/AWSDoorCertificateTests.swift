import Crypto
import Foundation
import KMSCore
import Logging
import SwiftASN1
import Synchronization
import Testing
import X509

@testable import KMSServer

/// aws-kms-v1 sections 1 and 10: the self-signed certificate's span, and
/// `kms tls-cert` printing certificates only.
@Suite struct AWSDoorCertificateTests {
    func issued() async throws -> TLSCertificateLoader.Material {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        return try await Self.load(names: [], from: FileSecretBlobStore(folder: folder), shared: false)
    }

    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return folder
    }

    /// One start's certificate, for an instance whose `KMS_TLS_HOSTNAMES` is `names`.
    static func load(names: [String], from secrets: any SecretBlobStore, shared: Bool) async throws
        -> TLSCertificateLoader.Material
    {
        var config = AWSConfiguration(port: 0, host: "127.0.0.1")
        config.hostnames = names
        return try await TLSCertificateLoader.load(
            config, secrets: secrets, masterKey: try MasterKey(bytes: Data(repeating: 3, count: 32)), now: Date(),
            logger: Logger(label: "test"), shared: shared)
    }

    static func dnsNames(_ material: TLSCertificateLoader.Material) throws -> Set<String> {
        let certificate = try Certificate(pemEncoded: material.certificatePEM)
        let names = try certificate.extensions.subjectAlternativeNames ?? SubjectAlternativeNames([])
        return Set(
            names.compactMap { name -> String? in
                if case .dnsName(let text) = name { return text }
                return nil
            })
    }

    /// A review: instances of one PostgreSQL deployment with different `KMS_TLS_HOSTNAMES` replaced the
    /// shared certificate at each start, the other serving one its clients no longer trusted. On a shared
    /// store the certificate now grows to every instance's names once, and then stays; on an instance's
    /// own store it follows the names exactly, as aws-kms-v1 section 1 says.
    @Test func instancesWithOtherNamesConvergeOnOneCertificate() async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = FileSecretBlobStore(folder: folder)
        let first = try await Self.load(names: ["kms-a.test"], from: shared, shared: true)
        let second = try await Self.load(names: ["kms-b.test"], from: shared, shared: true)
        #expect(second.certificatePEM != first.certificatePEM, "a name it lacked: reissued")
        #expect(try Self.dnsNames(second) == ["kms-a.test", "kms-b.test", "localhost"])
        for names in [["kms-a.test"], ["kms-b.test"], ["kms-a.test", "kms-b.test"], []] {
            let again = try await Self.load(names: names, from: shared, shared: true)
            #expect(again.certificatePEM == second.certificatePEM, "\(names): the deployment's certificate")
        }

        let ownFolder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: ownFolder) }
        let own = FileSecretBlobStore(folder: ownFolder)
        let x = try await Self.load(names: ["x.test"], from: own, shared: false)
        let y = try await Self.load(names: ["y.test"], from: own, shared: false)
        #expect(x.certificatePEM != y.certificatePEM)
        #expect(try Self.dnsNames(y) == ["y.test", "localhost"])
        #expect(try await Self.load(names: ["y.test"], from: own, shared: false).certificatePEM == y.certificatePEM)
    }

    /// A store where another instance writes its certificate (for `rivalNames`) just before this one's
    /// first write: the race two instances starting together run.
    final class RacingStore: SecretBlobStore {
        let inner: FileSecretBlobStore
        let rivalNames: [String]
        private let raced = Mutex(false)

        init(_ inner: FileSecretBlobStore, rivalNames: [String]) {
            self.inner = inner
            self.rivalNames = rivalNames
        }

        func blob(named name: String) async throws(KMSError) -> Data? { try await inner.blob(named: name) }

        private func rivalFirst() async {
            guard
                raced.withLock({
                    let first = !$0; $0 = true; return first
                })
            else { return }
            _ = try? await AWSDoorCertificateTests.load(names: rivalNames, from: inner, shared: true)
        }

        func createBlob(named name: String, wrapped: Data) async throws(KMSError) -> Data {
            await rivalFirst()
            return try await inner.createBlob(named: name, wrapped: wrapped)
        }

        func replaceBlob(named name: String, expected: Data, with wrapped: Data) async throws(KMSError) -> Data {
            await rivalFirst()
            return try await inner.replaceBlob(named: name, expected: expected, with: wrapped)
        }
    }

    /// Two first starts at once on PostgreSQL: the one that loses the write judges the winner's certificate
    /// by the same rule, and reissues it for both names where it took it as it was (a review).
    @Test func anInstanceThatLosesTheFirstWriteStillGetsItsNames() async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let inner = FileSecretBlobStore(folder: folder)
        let loser = try await Self.load(
            names: ["kms-b.test"], from: RacingStore(inner, rivalNames: ["kms-a.test"]), shared: true)
        #expect(try Self.dnsNames(loser) == ["kms-a.test", "kms-b.test", "localhost"])
        let winnerAgain = try await Self.load(names: ["kms-a.test"], from: inner, shared: true)
        #expect(winnerAgain.certificatePEM == loser.certificatePEM, "the stored one is the loser's, for both")
    }

    @Test func theSelfSignedCertificateSpansAtMost825Days() async throws {
        let material = try await issued()
        let notAfter = try #require(AWSDoorCertificate.notAfter(pem: material.certificatePEM))
        let notBefore = try #require(AWSDoorCertificate.notBefore(pem: material.certificatePEM))
        #expect(notAfter.timeIntervalSince(notBefore) == 825 * 86_400)
    }

    /// A review finding: the certificate is a CA (one PEM for every SDK), so
    /// its key could vouch for any host its bundle's users reach. Its name
    /// constraints allow only its own names.
    @Test func theCertificateVouchesOnlyForItsOwnNames() async throws {
        let material = try await issued()
        let door = try Certificate(pemEncoded: material.certificatePEM)
        let doorKey = try Certificate.PrivateKey(P256.Signing.PrivateKey(pemRepresentation: material.keyPEM))
        let constraints = try #require(try door.extensions.nameConstraints)
        #expect(door.extensions[oid: .X509ExtensionID.nameConstraints]?.critical == true)
        #expect(Set(constraints.permittedDNSDomains) == ["localhost"])
        func leaf(_ names: [GeneralName]) throws -> Certificate {
            let key = P256.Signing.PrivateKey()
            return try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(),
                publicKey: Certificate.PublicKey(key.publicKey), notValidBefore: Date() - 60,
                notValidAfter: Date() + 86_400, issuer: door.subject,
                subject: try DistinguishedName { CommonName("leaf") }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames(names)
                }, issuerPrivateKey: doorKey)
        }
        func verifies(_ leaf: Certificate) async -> Bool {
            var verifier = Verifier(rootCertificates: CertificateStore([door])) {
                RFC5280Policy()
            }
            if case .validCertificate = await verifier.validate(
                leaf: leaf, intermediates: CertificateStore())
            {
                return true
            }
            return false
        }
        #expect(await verifies(try leaf([.dnsName("localhost")])))
        #expect(await verifies(try leaf([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])))
        #expect(!(await verifies(try leaf([.dnsName("sts.amazonaws.com")]))))
        #expect(!(await verifies(try leaf([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 2]))]))))
        #expect(!(await verifies(try leaf([.dnsName("localhost"), .dnsName("kms.us-east-1.amazonaws.com")]))))
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
