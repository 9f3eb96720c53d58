import Foundation
import KMSProtocol

/// aws-kms-v1 section 1: the AWS-compatible listener, off unless `KMS_AWS_PORT` is set.
public struct AWSConfiguration: Sendable, Equatable {
    public var port: Int
    public var host: String
    public var region = "us-east-1"
    public var accountId = "000000000000"
    public var certificateFile: URL?
    public var keyFile: URL?
    /// Extra SANs of the self-signed certificate (names or IP addresses).
    public var hostnames: [String] = []
    public var allowPlainHTTP = false

    public var partition: AWSPartition { AWSPartition(region: region, accountId: accountId) }

    /// nil when `KMS_AWS_PORT` is unset or set to nothing.
    static func read(_ reader: ConfigReader, host: String) throws(KMSConfiguration.Invalid) -> AWSConfiguration? {
        // Set to nothing is off, like unset: the door is opt-in, and off is the safe reading.
        guard !reader.isSetButEmpty("KMS_AWS_PORT"), let port = try reader.integer("KMS_AWS_PORT", in: 1...65_535)
        else { return nil }
        var config = AWSConfiguration(port: Int(port), host: try reader.listenHost("KMS_AWS_HOST") ?? host)
        if let region = try reader.setting("KMS_AWS_REGION") {
            guard !region.isEmpty, region.utf8.count <= 32,
                region.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
            else {
                throw KMSConfiguration.Invalid(variable: "KMS_AWS_REGION", reason: "must look like us-east-1")
            }
            config.region = region
        }
        if let account = try reader.setting("KMS_AWS_ACCOUNT_ID") {
            guard account.utf8.count == 12, account.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw KMSConfiguration.Invalid(variable: "KMS_AWS_ACCOUNT_ID", reason: "must be 12 digits")
            }
            config.accountId = account
        }
        config.certificateFile = try reader.string("KMS_TLS_CERT_FILE").map { URL(fileURLWithPath: $0) }
        config.keyFile = try reader.string("KMS_TLS_KEY_FILE").map { URL(fileURLWithPath: $0) }
        guard (config.certificateFile == nil) == (config.keyFile == nil) else {
            throw KMSConfiguration.Invalid(
                variable: config.certificateFile == nil ? "KMS_TLS_CERT_FILE" : "KMS_TLS_KEY_FILE",
                reason: "KMS_TLS_CERT_FILE and KMS_TLS_KEY_FILE go together: set both or neither")
        }
        // Read as the address lists are: empty means none, an empty item in a list is refused (it was
        // dropped without a word), and a refused item is shown only when short (a review).
        let hostnames = try reader.string("KMS_TLS_HOSTNAMES") ?? ""
        if !hostnames.trimmingCharacters(in: .whitespaces).isEmpty {
            config.hostnames = hostnames.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        if config.hostnames.contains(where: \.isEmpty) {
            throw KMSConfiguration.Invalid(variable: "KMS_TLS_HOSTNAMES", reason: "has an empty list item")
        }
        if let bad = config.hostnames.first(where: { IPAddress($0) == nil && !Self.isHostName($0) }) {
            throw KMSConfiguration.Invalid(
                variable: "KMS_TLS_HOSTNAMES",
                reason:
                    "\(ConfigReader.shown(bad)) is neither an IP address nor a host name (letters, digits and hyphens in dot-separated labels, no trailing dot or wildcard)"
            )
        }
        config.allowPlainHTTP = try reader.boolean("KMS_AWS_ALLOW_PLAIN_HTTP") ?? false
        // Any loopback address, as the contract says (127.0.0.2 was refused: a conformance review).
        if config.allowPlainHTTP, config.host != "localhost", IPAddress(config.host)?.isLoopback != true {
            throw KMSConfiguration.Invalid(
                variable: "KMS_AWS_ALLOW_PLAIN_HTTP",
                reason: "plain HTTP is allowed on a loopback KMS_AWS_HOST only (SigV4 hides nothing)")
        }
        return config
    }

    /// A DNS host name as certificates hold it: 1–63 letters, digits and
    /// hyphens per label (not at a label's ends), 253 bytes in all, no empty
    /// or trailing label. The self-signed certificate's name constraints
    /// carry each name, and by a review's reading of Go's x509 source, Go
    /// (SOPS, Terraform) refuses a whole certificate whose constraint is not
    /// such a name.
    static func isHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { byte in
                    switch byte {
                    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
                        return true
                    default: return false
                    }
                }
        }
    }
}
