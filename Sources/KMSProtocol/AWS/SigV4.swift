public import Crypto
public import Foundation

/// AWS Signature Version 4 for `POST /` requests without a query
/// (aws-kms-v1 section 3): the canonical request, the string to sign, the
/// signing key and the signature. Pure: the server's checks (order, skew,
/// scope, which headers must be signed) are in the AWS door.
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"

    /// `Authorization: AWS4-HMAC-SHA256 Credential=<AKID>/<date>/<region>/<service>/aws4_request,
    /// SignedHeaders=<names>, Signature=<64 hex>`, parsed.
    public struct Authorization: Sendable, Equatable {
        public let accessKeyId: String
        public let date: String
        public let region: String
        public let service: String
        public let signedHeaders: [String]
        public let signature: String

        public var scope: String { "\(date)/\(region)/\(service)/aws4_request" }

        /// nil when the header is not exactly that form (`IncompleteSignatureException`).
        public init?(parsing header: String) {
            // ASCII only: `Character` splitting and `String` comparison follow Unicode, so U+037E (a Greek
            // question mark, canonically `;`) separated signed headers a proxy reading bytes sees as one (a
            // review).
            guard header.isAllASCII, header.bytesHave(prefix: SigV4.algorithm + " ") else { return nil }
            var members: [String: String] = [:]
            for part in header.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
                let trimmed = part.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "=") else { return nil }
                let name = String(trimmed[..<equals])
                guard members[name] == nil else { return nil }
                members[name] = String(trimmed[trimmed.index(after: equals)...])
            }
            guard members.count == 3, let credential = members["Credential"], let signed = members["SignedHeaders"],
                let signature = members["Signature"]
            else { return nil }
            let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard scope.count == 5, scope[4] == "aws4_request", !scope[0].isEmpty else { return nil }
            guard signature.utf8.count == 64, signature.utf8.allSatisfy({ SigV4.isLowerHex($0) }) else { return nil }
            let names = signed.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
            // Sorted, lowercase, unique, non-empty.
            guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0 == $0.lowercased() }),
                zip(names, names.dropFirst()).allSatisfy({ $0.0 < $0.1 })
            else { return nil }
            accessKeyId = scope[0]
            date = scope[1]
            region = scope[2]
            service = scope[3]
            signedHeaders = names
            self.signature = signature
        }

        public init(
            accessKeyId: String, date: String, region: String, service: String, signedHeaders: [String],
            signature: String
        ) {
            self.accessKeyId = accessKeyId
            self.date = date
            self.region = region
            self.service = service
            self.signedHeaders = signedHeaders
            self.signature = signature
        }

        public var header: String {
            "\(SigV4.algorithm) Credential=\(accessKeyId)/\(scope), SignedHeaders=\(signedHeaders.joined(separator: ";")), Signature=\(signature)"
        }
    }

    /// The canonical request of a `POST /` without a query: each signed
    /// header's values trimmed, blank runs made one space, repeats joined by `,`.
    /// `payloadHash`: the hash to write in place of the body's (nil: the body's), to judge what a signer
    /// that signed another hash meant.
    public static func canonicalRequest(
        headers: [(name: String, value: String)], signedHeaders: [String], body: Data, payloadHash: String? = nil
    ) -> String {
        var text = "POST\n/\n\n"
        for name in signedHeaders {
            let values = headers.filter { $0.name.lowercased() == name }.map { canonicalValue($0.value) }
            text += name + ":" + values.joined(separator: ",") + "\n"
        }
        return text + "\n" + signedHeaders.joined(separator: ";") + "\n" + (payloadHash ?? hex(SHA256.hash(data: body)))
    }

    public static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex(SHA256.hash(data: Data(canonicalRequest.utf8)))
    }

    /// `kSigning`: a key per (secret, date, region, service), cacheable for a day.
    public static func signingKey(secret: some DataProtocol, date: String, region: String, service: String)
        -> SymmetricKey
    {
        var key = SymmetricKey(data: Data("AWS4".utf8) + Data(secret))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    public static func signature(signingKey: SymmetricKey, stringToSign: String) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: signingKey))
    }

    /// Signs a request (tests and clients): the `Authorization` header value.
    public static func authorization(
        accessKeyId: String, secret: String, amzDate: String, region: String, service: String,
        headers: [(name: String, value: String)], body: Data
    ) -> String {
        let signed = Array(Set(headers.map { $0.name.lowercased() })).sorted()
        let date = String(amzDate.prefix(8))
        let scope = "\(date)/\(region)/\(service)/aws4_request"
        let request = canonicalRequest(headers: headers, signedHeaders: signed, body: body)
        let key = signingKey(secret: Data(secret.utf8), date: date, region: region, service: service)
        let signature = signature(
            signingKey: key, stringToSign: stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: request))
        return Authorization(
            accessKeyId: accessKeyId, date: date, region: region, service: service, signedHeaders: signed,
            signature: signature
        ).header
    }

    static func canonicalValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// A time as `X-Amz-Date` writes it, `yyyymmddThhmmssZ`.
    public static func amzDate(_ date: Date) -> String {
        let text = Timestamp.format(date)  // 2026-11-30T12:00:00.000Z
        return text.prefix(4) + text.dropFirst(5).prefix(2) + text.dropFirst(8).prefix(2) + "T"
            + text.dropFirst(11).prefix(2) + text.dropFirst(14).prefix(2) + text.dropFirst(17).prefix(2) + "Z"
    }

    /// `yyyymmddThhmmssZ` → the date, nil otherwise: also for digits out of
    /// range (hour 70, second 99, February 30), which the date parser would
    /// roll over into a valid time while the scope kept the text's day.
    public static func parseAmzDate(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z"),
            bytes[0..<8].allSatisfy({ (48...57).contains($0) }), bytes[9..<15].allSatisfy({ (48...57).contains($0) })
        else { return nil }
        let text = String(text)
        let iso =
            "\(text.prefix(4))-\(text.dropFirst(4).prefix(2))-\(text.dropFirst(6).prefix(2))T"
            + "\(text.dropFirst(9).prefix(2)):\(text.dropFirst(11).prefix(2)):\(text.dropFirst(13).prefix(2)).000Z"
        guard let date = Timestamp.parse(iso), amzDate(date) == text else { return nil }
        return date
    }

    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isLowerHex(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (97...102).contains(byte) }
}
