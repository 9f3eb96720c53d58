import Crypto
import Foundation
import KMSCore
import KMSProtocol

/// Who signed an AWS request: the access key and its (active) client.
struct AWSCaller: Sendable {
    let accessKeyId: String
    let client: ClientRecord

    /// The audit fields of this door (aws-kms-v1 section 6).
    func who(address: String) -> [(String, String)] {
        [
            ("client", address), ("door", "aws"), ("accessKeyId", accessKeyId), ("clientId", client.clientId),
            ("clientName", client.name),
        ]
    }
}

/// SigV4 verification exactly in aws-kms-v1 section 3's order; each
/// refusal is a `400` with the code the section names.
struct AWSAuthenticator: Sendable {
    let registry: ClientRegistry
    let region: String
    let clock: any KMSClock
    static let maxSkew: TimeInterval = 300

    /// `headers`: every field as received (name, value), `Host` included.
    func verify(headers: [(name: String, value: String)], body: Data) async throws(AWSFault) -> AWSCaller {
        func values(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name }.map(\.value) }
        // 1. An Authorization header at all.
        guard let header = values("authorization").first else {
            throw AWSFault("MissingAuthenticationTokenException", "Missing Authentication Token")
        }
        // 2. Its form, the signed headers, X-Amz-Date.
        let incomplete = AWSFault(
            "IncompleteSignatureException",
            "The Authorization header must be AWS4-HMAC-SHA256 Credential=…, SignedHeaders=… (sorted, lowercase, with host, x-amz-date and x-amz-target), Signature=…; and X-Amz-Date yyyymmddThhmmssZ."
        )
        // One of each header the request's meaning hangs on: a proxy and this server must read the same.
        let single = ["authorization", "host", "x-amz-target", "x-amz-content-sha256"].allSatisfy {
            values($0).count <= 1
        }
        guard single, let authorization = SigV4.Authorization(parsing: header),
            Set(authorization.signedHeaders).isSuperset(of: ["host", "x-amz-date", "x-amz-target"]),
            authorization.signedHeaders.allSatisfy({ !values($0).isEmpty }),
            let amzDateText = values("x-amz-date").first, values("x-amz-date").count == 1,
            let amzDate = SigV4.parseAmzDate(amzDateText)
        else { throw incomplete }
        // Signed values in ASCII only, as SigV4 clients send them: values arrive decoded (bytes that are not
        // UTF-8 as U+FFFD), so a signature over one would also pass other bytes in its place (a review).
        // X-Amz-Target and Content-Type are refused past ASCII by their own rules, with their own answers.
        let checkedLater: Set<String> = ["x-amz-target", "content-type"]
        guard
            authorization.signedHeaders.allSatisfy({ checkedLater.contains($0) || values($0).allSatisfy(\.isAllASCII) })
        else {
            throw AWSFault(
                "IncompleteSignatureException", "Signed header values must be ASCII (RFC 9110 field values).")
        }
        // 3. No session tokens.
        guard values("x-amz-security-token").isEmpty else {
            throw AWSFault(
                "UnrecognizedClientException", "Session tokens are not supported: use an access key of this KMS.")
        }
        // 4. Scope and skew.
        guard authorization.date == String(amzDateText.prefix(8)), authorization.region == region,
            authorization.service == "kms"
        else {
            throw AWSFault(
                "InvalidSignatureException",
                "Credential should be scoped to a valid region, service kms and the date of X-Amz-Date (\(region)).")
        }
        let now = clock.now()
        if amzDate.timeIntervalSince(now) > Self.maxSkew {
            throw AWSFault(
                "InvalidSignatureException",
                "Signature not yet current: \(amzDateText) is still later than \(SigV4.amzDate(now.addingTimeInterval(Self.maxSkew)))"
            )
        }
        if now.timeIntervalSince(amzDate) > Self.maxSkew {
            throw AWSFault(
                "InvalidSignatureException",
                "Signature expired: \(amzDateText) is now earlier than \(SigV4.amzDate(now.addingTimeInterval(-Self.maxSkew)))"
            )
        }
        // 5. The access key, read now (revocation is immediate).
        let unrecognized = AWSFault(
            "UnrecognizedClientException", "The security token included in the request is invalid.")
        let found: (client: ClientRecord, secret: Data)?
        do {
            found = try await registry.accessKeySecret(authorization.accessKeyId)
        } catch {
            throw AWSFault.from(error)
        }
        guard let found else { throw unrecognized }
        // 6. The signature, and X-Amz-Content-Sha256 when sent. The body is hashed once, for both.
        let bodyHash = SigV4.hex(SHA256.hash(data: body))
        let canonical = SigV4.canonicalRequest(
            headers: headers, signedHeaders: authorization.signedHeaders, body: body, payloadHash: bodyHash)
        let key = SigV4.signingKey(
            secret: found.secret, date: authorization.date, region: region, service: "kms")
        let expected = SigV4.signature(
            signingKey: key,
            stringToSign: SigV4.stringToSign(
                amzDate: amzDateText, scope: authorization.scope, canonicalRequest: canonical))
        let contentHash = values("x-amz-content-sha256")
        // A wrong X-Amz-Content-Sha256 is said apart from a wrong secret (an AWS user's walkthrough was sent to
        // check the secret): when the signature holds over the body's hash, or over the header's own value
        // (what botocore and curl sign). Only the secret's holder can make either hold, so nobody else learns
        // anything from the difference.
        func hashMismatch() -> AWSFault {
            var fault = AWSFault(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.")
            fault.accessKeyFound = true
            return fault
        }
        guard ConstantTime.equal(expected, authorization.signature) else {
            // Only when the header is signed: an unsigned one could be set by whoever replays a request's
            // headers, and the answer would then tell whether a guessed body was the one signed (a review).
            if authorization.signedHeaders.contains("x-amz-content-sha256"), contentHash.count == 1,
                let claimed = contentHash.first, claimed != bodyHash
            {
                let asClaimed = SigV4.signature(
                    signingKey: key,
                    stringToSign: SigV4.stringToSign(
                        amzDate: amzDateText, scope: authorization.scope,
                        canonicalRequest: SigV4.canonicalRequest(
                            headers: headers, signedHeaders: authorization.signedHeaders, body: body,
                            payloadHash: claimed)))
                if ConstantTime.equal(asClaimed, authorization.signature) { throw hashMismatch() }
            }
            var mismatch = AWSFault(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
            )
            mismatch.accessKeyFound = true
            throw mismatch
        }
        // As sent: SigV4 writes the hash in lowercase hex, as the SDKs send it (a review).
        guard contentHash.allSatisfy({ ConstantTime.equal($0, bodyHash) }) else { throw hashMismatch() }
        return AWSCaller(accessKeyId: authorization.accessKeyId, client: found.client)
    }
}
