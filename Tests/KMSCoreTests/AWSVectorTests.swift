import Crypto
import Foundation
import KMSCore
import KMSProtocol
import Testing

/// aws-kms-v1 sections 3 to 5: SigV4 against AWS's suite (signed by botocore,
/// for the suite's scope and again for `kms`), the ciphertext blob and the
/// encryption context vector, and the key id bijection.
@Suite struct AWSVectorTests {
    struct Fixture: Decodable {
        struct Case: Decodable {
            let name: String
            let service: String
            let region: String
            let headers: [[String]]
            let body: String
            let authorization: String
        }
        let secret: String
        let accessKeyId: String
        let cases: [Case]
    }

    static func fixture() throws -> Fixture {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/sigv4/sigv4", withExtension: "json"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    @Test func sigV4SuiteSignaturesMatch() throws {
        let fixture = try Self.fixture()
        #expect(fixture.cases.count == 14)
        for test in fixture.cases {
            let headers = test.headers.map { (name: $0[0], value: $0[1]) }
            let amzDate = try #require(headers.first { $0.name.lowercased() == "x-amz-date" }?.value)
            let parsed = try #require(SigV4.Authorization(parsing: test.authorization), "\(test.name)")
            let canonical = SigV4.canonicalRequest(
                headers: headers, signedHeaders: parsed.signedHeaders, body: Data(test.body.utf8))
            let key = SigV4.signingKey(
                secret: Data(fixture.secret.utf8), date: parsed.date, region: test.region, service: test.service)
            let signature = SigV4.signature(
                signingKey: key,
                stringToSign: SigV4.stringToSign(amzDate: amzDate, scope: parsed.scope, canonicalRequest: canonical))
            #expect(signature == parsed.signature, "\(test.name)")
            let whole = SigV4.authorization(
                accessKeyId: fixture.accessKeyId, secret: fixture.secret, amzDate: amzDate, region: test.region,
                service: test.service, headers: headers, body: Data(test.body.utf8))
            #expect(whole == test.authorization, "\(test.name)")
        }
        // AWS's published signature of post-vanilla (the suite's own file), independent of botocore.
        #expect(
            fixture.cases[0].authorization.hasSuffix(
                "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"))
    }

    @Test func malformedAuthorizationHeadersAreRefused() {
        let good =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature="
            + String(repeating: "a", count: 64)
        #expect(SigV4.Authorization(parsing: good) != nil)
        for bad in [
            good.replacingOccurrences(of: "AWS4-HMAC-SHA256", with: "AWS4-HMAC-SHA512"),
            good.replacingOccurrences(of: "host;x-amz-date", with: "x-amz-date;host"),
            good.replacingOccurrences(of: "host;", with: "Host;"),
            good.replacingOccurrences(of: "host;", with: "host;host;"),
            good.replacingOccurrences(of: "/aws4_request", with: "/aws5_request"),
            good + "0", good.replacingOccurrences(of: "Signature=a", with: "Signature=A"),
            good + ", Extra=1",
        ] {
            #expect(SigV4.Authorization(parsing: bad) == nil, "\(bad)")
        }
        #expect(SigV4.parseAmzDate("20150830T123600Z") == Timestamp.parse("2015-08-30T12:36:00.000Z"))
        #expect(SigV4.parseAmzDate("2015-08-30T12:36:00Z") == nil)
        // A review finding: digits out of range rolled over into a valid time (hour 70 was 22:00
        // two days on), while the scope date stayed the text's day.
        for outOfRange in [
            "20261129T705144Z", "20261201T225999Z", "20261201T216037Z", "20261201T240000Z", "20260230T120000Z",
            "20261301T120000Z", "20261200T120000Z", "20261232T120000Z",
        ] {
            #expect(SigV4.parseAmzDate(outOfRange) == nil, "\(outOfRange)")
        }
        #expect(SigV4.parseAmzDate("20241231T235959Z") == Timestamp.parse("2024-12-31T23:59:59.000Z"))
        #expect(SigV4.parseAmzDate("20240229T000000Z") == Timestamp.parse("2024-02-29T00:00:00.000Z"))
    }

    @Test func section5BlobAndContextVector() throws {
        let context = try #require(EncryptionContext.encode(["purpose": "test", "app": "photos"]))
        let expected = ["0002", "0003", "617070", "0006", "70686f746f73", "0007", "707572706f7365", "0004", "74657374"]
        #expect(SigV4.hex(context) == expected.joined())
        let material = SymmetricKey(data: Data(0..<32))
        let header = KeyCiphertext(keyId: "key_Dx4tPEtaSYemVDIQ_ty6mA", version: 1, sealed: Data())
        let box = try AES.GCM.seal(
            Data("hello".utf8), using: material, nonce: try AES.GCM.Nonce(data: Data(0..<12)),
            authenticating: header.aad(context))
        let sealed = KeyCiphertext(keyId: header.keyId, version: 1, sealed: try #require(box.combined))
        #expect(sealed.text == "kms:v1:key_Dx4tPEtaSYemVDIQ_ty6mA:1:AAECAwQFBgcICQoLL2e6d6p00RMMW12c7Pldr5z4Qf5n")
        #expect(
            Base64.encode(sealed.blob)
                == "S01TARprZXlfRHg0dFBFdGFTWWVtVkRJUV90eTZtQQAAAAEAAQIDBAUGBwgJCgsvZ7p3qnTREwxbXZzs+V2vnPhB/mc=")
        #expect(KeyCiphertext(blob: sealed.blob) == sealed)
        #expect(KeyCiphertext(parsingEitherForm: Base64.encode(sealed.blob)) == sealed)
        #expect(KeyCiphertext(blob: Data("KMS\u{2}".utf8) + sealed.blob.dropFirst(4)) == nil)
        #expect(EncryptionContext.encode([:]) == Data())
        #expect(EncryptionContext.encode(["": "x"]) == nil)
        // 4,096 plaintext bytes make a 4,159-byte blob.
        let big = KeyCiphertext(keyId: header.keyId, version: 1, sealed: Data(count: 12 + 4096 + 16))
        #expect(big.blob.count == 4159)
    }

    @Test func keyIdsAreUUIDs() {
        #expect(AWSKeyId.uuid(fromNative: "key_Dx4tPEtaSYemVDIQ_ty6mA") == "0f1e2d3c-4b5a-4987-a654-3210fedcba98")
        #expect(AWSKeyId.native(fromUUID: "0F1E2D3C-4B5A-4987-A654-3210FEDCBA98") == "key_Dx4tPEtaSYemVDIQ_ty6mA")
        #expect(AWSKeyId.native(fromUUID: "0f1e2d3c4b5a-4987-a654-3210fedcba98") == nil)
        for _ in 0..<100 {
            let id = KeyIdentifier.newKeyId()
            let uuid = AWSKeyId.uuid(fromNative: id)
            #expect(uuid.map { Array($0)[14] == "4" && "89ab".contains(Array($0)[19]) } == true, "\(id)")
            #expect(uuid.flatMap(AWSKeyId.native(fromUUID:)) == id)
        }
        let partition = AWSPartition(region: "us-east-1", accountId: "000000000000")
        let arn = "arn:aws:kms:us-east-1:000000000000:key/0f1e2d3c-4b5a-4987-a654-3210fedcba98"
        #expect(partition.keyArn(native: "key_Dx4tPEtaSYemVDIQ_ty6mA") == arn)
        #expect(partition.reference(arn) == .keyId("key_Dx4tPEtaSYemVDIQ_ty6mA"))
        #expect(partition.reference("0f1e2d3c-4b5a-4987-a654-3210fedcba98") == .keyId("key_Dx4tPEtaSYemVDIQ_ty6mA"))
        #expect(partition.reference("key_Dx4tPEtaSYemVDIQ_ty6mA") == .keyId("key_Dx4tPEtaSYemVDIQ_ty6mA"))
        #expect(partition.reference("alias/photos") == .alias("photos"))
        #expect(partition.reference("arn:aws:kms:us-east-1:000000000000:alias/photos") == .alias("photos"))
        #expect(partition.reference("arn:aws:kms:eu-west-1:000000000000:alias/photos") == .invalid)
        #expect(partition.reference("alias/aws/ebs") == .invalidAlias)
        #expect(partition.reference("photos") == .invalid)
        // Prefixes are bytes: a combining mark after `alias/` is part of the name (refused by its grammar),
        // not a reason to read the text as something else, and is never dropped with the prefix.
        #expect(partition.reference("alias/\u{301}photos") == .invalidAlias)
        #expect(partition.reference("arn:aws:kms:us-east-1:000000000000:alias/\u{301}photos") == .invalidAlias)
        #expect(
            partition.reference("arn:aws:kms:us-east-1:000000000000:key/\u{301}0f1e2d3c-4b5a-4987-a654-3210fedcba98")
                == .invalid)
        #expect(AWSKeyId.uuid(fromNative: "key_\u{301}Dx4tPEtaSYemVDIQ_ty6mA") == nil)
    }
}
