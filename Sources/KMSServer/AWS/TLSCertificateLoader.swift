import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Logging
import SwiftASN1
import X509

/// The AWS door's certificate (aws-kms-v1 section 1): the configured PEM
/// files, or a self-signed ECDSA P-256 certificate made at first start —
/// its own anchor (CA:TRUE pathlen 0, so one PEM serves as `AWS_CA_BUNDLE`,
/// with name constraints to its own names),
/// 825 days, SANs `KMS_TLS_HOSTNAMES` + localhost, 127.0.0.1, ::1 — kept
/// with its key wrapped by the master key in the secret `tls-ecdsa-p256`
/// (shared on PostgreSQL), and reissued when the SANs change or fewer than
/// 30 days remain.
///
/// On a shared store the certificate is the deployment's, not one
/// instance's: it is reissued only when it lacks one of this instance's
/// names, and then for every name it had as well. Reissuing whenever the
/// names differed made two instances with different `KMS_TLS_HOSTNAMES`
/// (each its own tailnet address, say) replace each other's certificate at
/// every start, each serving one its clients could not both trust (a review).
enum TLSCertificateLoader {
    static let secretName = ServerSecrets.awsDoorTLS
    static let aad = "kms-v1/secret/\(secretName)"
    static let lifetime: TimeInterval = 825 * 86_400
    static let renewBefore: TimeInterval = 30 * 86_400

    struct Material: Sendable {
        let certificatePEM: String
        let keyPEM: String
    }

    /// The stored form, wrapped by the master key.
    private struct Stored: Codable {
        var key: String  // PKCS#8 PEM
        var certificate: String  // PEM
        var names: [String]
        var notAfter: Double
        /// Issued with name constraints (2026-12-02); one stored before is reissued.
        var constrained: Bool?
    }

    static func sans(_ config: AWSConfiguration) -> [String] {
        Array(Set(config.hostnames + ["localhost", "127.0.0.1", "::1"])).sorted()
    }

    /// `shared`: the secrets are every instance's (PostgreSQL).
    static func load(
        _ config: AWSConfiguration, secrets: any SecretBlobStore, masterKey: MasterKey, now: Date, logger: Logger,
        shared: Bool
    ) async throws -> Material {
        if let certificate = config.certificateFile, let key = config.keyFile {
            guard let chain = try? String(contentsOf: certificate, encoding: .utf8),
                let keyText = try? String(contentsOf: key, encoding: .utf8)
            else {
                throw StartupFailure(
                    description: "KMS_TLS_CERT_FILE / KMS_TLS_KEY_FILE: cannot read the PEM files",
                    isConfiguration: true)
            }
            if let mode = DurableFile.mode(of: key), DurableFile.isLooseSecret(mode: mode, of: key) {
                logger.warning(
                    "the TLS key file is readable by others; run chmod 600 on it",
                    metadata: ["file": "\(key.path)", "mode": "\(String(mode, radix: 8))"])
            }
            return Material(certificatePEM: chain, keyPEM: keyText)
        }
        let wanted = sans(config)
        var existing = try await secrets.blob(named: secretName)
        // Another instance may write between the read and the write: its certificate is judged the same way.
        for attempt in 0..<3 {
            let stored = existing.flatMap { open($0, masterKey: masterKey) }
            if attempt > 0, stored == nil {
                throw StartupFailure(description: "the stored TLS certificate does not open under this master key")
            }
            if let stored, serves(stored, names: wanted, shared: shared),
                stored.notAfter - now.timeIntervalSince1970 > renewBefore, stored.constrained == true
            {
                return Material(certificatePEM: stored.certificate, keyPEM: stored.key)
            }
            let names = shared ? Array(Set(wanted + (stored?.names ?? []))).sorted() : wanted
            let fresh = try issue(names: names, now: now)
            let wrapped = try masterKey.wrap(try JSONEncoder().encode(fresh), aad: aad)
            let kept =
                if let existing {
                    try await secrets.replaceBlob(named: secretName, expected: existing, with: wrapped)
                } else {
                    try await secrets.createBlob(named: secretName, wrapped: wrapped)
                }
            guard kept == wrapped else {
                existing = kept
                continue
            }
            // A replaced certificate fails every client holding the old one (CERTIFICATE_VERIFY_FAILED): the line
            // says what to do (an AWS user's walkthrough looked it up in docs/aws.md).
            logger.notice(
                existing == nil
                    ? "issued a self-signed TLS certificate for the AWS door: hand its clients kms tls-cert's output as AWS_CA_BUNDLE"
                    : "issued a new self-signed TLS certificate for the AWS door: clients that trust the old one now fail (CERTIFICATE_VERIFY_FAILED); hand them kms tls-cert's output again",
                metadata: ["names": "\(names.joined(separator: ","))"])
            if shared, existing != nil {
                logger.warning(
                    "the AWS door's certificate is new, and other instances serve the one they loaded until they restart: restart them, then hand out kms tls-cert again"
                )
            }
            return Material(certificatePEM: fresh.certificate, keyPEM: fresh.key)
        }
        throw StartupFailure(
            description:
                "the AWS door's stored certificate changed three times during this start: other instances are reissuing it; start again"
        )
    }

    /// Whether `stored` is the certificate for `names`: the same names, or on a shared store all of them.
    private static func serves(_ stored: Stored, names: [String], shared: Bool) -> Bool {
        shared ? Set(names).isSubset(of: stored.names) : stored.names == names
    }

    /// Whether the next start reissues the stored certificate for `config`'s names (`kms doctor`);
    /// nil when none is stored or it does not open.
    static func reissuesForNames(
        _ config: AWSConfiguration, shared: Bool, secrets: any SecretBlobStore, masterKey: MasterKey
    ) async throws -> (reissues: Bool, stored: [String])? {
        guard let blob = try await secrets.blob(named: secretName), let stored = open(blob, masterKey: masterKey)
        else { return nil }
        return (!serves(stored, names: sans(config), shared: shared), stored.names)
    }

    /// The stored certificate's PEM (`kms tls-cert`), nil before a first start.
    static func storedCertificate(secrets: any SecretBlobStore, masterKey: MasterKey) async throws -> String? {
        guard let blob = try await secrets.blob(named: secretName) else { return nil }
        return open(blob, masterKey: masterKey)?.certificate
    }

    private static func open(_ blob: Data, masterKey: MasterKey) -> Stored? {
        guard let body = try? masterKey.unwrap(blob, aad: aad) else { return nil }
        return try? JSONDecoder().decode(Stored.self, from: body)
    }

    private static func issue(names: [String], now: Date) throws -> Stored {
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            CommonName("kms AWS door")
            OrganizationName("personal kms")
        }
        let identifier = SubjectKeyIdentifier(hash: certificateKey.publicKey)
        let alternatives = SubjectAlternativeNames(
            names.map { name -> GeneralName in
                if let address = IPAddress(name) {
                    return .ipAddress(ASN1OctetString(contentBytes: sanBytes(address)))
                }
                return .dnsName(name)
            })
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(nameConstraints(names))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
            try ExtendedKeyUsage([.serverAuth])
            identifier
            AuthorityKeyIdentifier(keyIdentifier: identifier.keyIdentifier)
            alternatives
        }
        // 825 days from notBefore, not from now: clients that enforce the
        // limit (Apple's) measure the whole span.
        let notBefore = now.addingTimeInterval(-300)
        let notAfter = notBefore.addingTimeInterval(lifetime)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: certificateKey.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: certificateKey)
        return Stored(
            key: key.pemRepresentation, certificate: try certificate.serializeAsPEM().pemString, names: names,
            notAfter: notAfter.timeIntervalSince1970, constrained: true)
    }

    /// The certificate is a CA (aws-kms-v1: one PEM serves every SDK as its
    /// bundle), so whoever gets its key could issue a certificate for any
    /// host that bundle's users reach, AWS's own endpoints included (a review
    /// did). Name constraints limit what it can vouch for to its own names:
    /// each DNS name (and names under it) and each address exactly. The
    /// certificate itself is the trust anchor, to which they do not apply.
    static func nameConstraints(_ names: [String]) -> NameConstraints {
        var domains: [String] = []
        var ranges: [ASN1OctetString] = []
        for name in names {
            guard let address = IPAddress(name) else {
                domains.append(name)
                continue
            }
            let bytes = sanBytes(address)
            ranges.append(ASN1OctetString(contentBytes: bytes + ArraySlice(repeating: 0xFF, count: bytes.count)))
        }
        return NameConstraints(permittedDNSDomains: domains, permittedIPRanges: ranges)
    }

    /// An address as a SAN holds it: IPv4 in 4 bytes, not its IPv4-mapped IPv6 form.
    static func sanBytes(_ address: IPAddress) -> ArraySlice<UInt8> {
        let mapped =
            address.bytes.count == 16
            && address.bytes[0..<12].elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF])
        return mapped ? address.bytes[12...] : address.bytes[...]
    }
}

/// What the CLI may read of the AWS door's certificate.
public enum AWSDoorCertificate {
    /// When the first certificate of a PEM chain expires (`kms doctor`).
    public static func notAfter(pem: String) -> Date? {
        guard let certificate = try? Certificate(pemEncoded: pem) else { return nil }
        return certificate.notValidAfter
    }

    /// When the first certificate of a PEM chain starts to be valid.
    static func notBefore(pem: String) -> Date? {
        guard let certificate = try? Certificate(pemEncoded: pem) else { return nil }
        return certificate.notValidBefore
    }

    /// Only the certificates of a PEM file, for printing: a file holding the
    /// certificate and its key together is a valid `KMS_TLS_CERT_FILE`, and
    /// `kms tls-cert` must never print a key. Nil when it holds no certificate.
    public static func certificatesOnly(pem: String) -> String? {
        // By text, block by block: a strict PEM parse would refuse the whole file
        // for a key block it need not read (legacy headers, long lines).
        var blocks: [String] = []
        var block: [String]?
        for line in pem.split(whereSeparator: \.isNewline) {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text == "-----BEGIN CERTIFICATE-----" {
                block = [text]
                continue
            }
            guard block != nil else { continue }
            // Any other boundary inside a certificate block: a broken file, of which nothing is kept.
            if text.hasPrefix("-----"), text != "-----END CERTIFICATE-----" {
                block = nil
                continue
            }
            block?.append(text)
            if text == "-----END CERTIFICATE-----", let lines = block {
                blocks.append(lines.joined(separator: "\n") + "\n")
                block = nil
            }
        }
        return blocks.isEmpty ? nil : blocks.joined()
    }

    /// Whether the next start reissues the stored self-signed certificate because of `KMS_TLS_HOSTNAMES`
    /// (`shared`: on PostgreSQL, where it lacks one of them), with the names it has; nil without one.
    public static func reissuesForNames(
        _ config: AWSConfiguration, shared: Bool, secrets: any SecretBlobStore, masterKey: MasterKey
    ) async throws -> (reissues: Bool, stored: [String])? {
        try await TLSCertificateLoader.reissuesForNames(config, shared: shared, secrets: secrets, masterKey: masterKey)
    }

    /// The stored self-signed certificate in PEM; nil before a first start.
    public static func stored(secrets: any SecretBlobStore, masterKey: MasterKey) async throws -> String? {
        try await TLSCertificateLoader.storedCertificate(secrets: secrets, masterKey: masterKey)
    }
}
