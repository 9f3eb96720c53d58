import Foundation
import KMSCore
import KMSProtocol

/// A wire type with its schema and an example: what the OpenAPI document and
/// `/docs` show, and what the sync tests check the type against (every stored
/// property must be in the schema, and the example must validate).
protocol Documented: Encodable, Sendable {
    static var schemaName: String { get }
    static var schema: Schema { get }
    static var example: Self { get }
}

extension Documented {
    static var schemaName: String { String(describing: Self.self) }

    /// The example as JSON text.
    static var exampleJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(example)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

let exampleKeyId = "key_3q2-7wAAAAAAAAAAAAAAAA"
let exampleTime = "2026-11-29T12:00:00.000Z"
let exampleCiphertext =
    "kms:v1:key_3q2-7wAAAAAAAAAAAAAAAA:2:oKGio6SlpqeoqaqrFlnIWKv7oNrJR9nVVcDvDxFBODw1wo0zKQWFI8k="
let contextSchema = Schema.map(.string())
/// The largest plaintext or aad, in bytes (api-v1).
let maxCallerBytes = CryptoLimits.maxPlaintextBytes
/// A client's grants, as a request gives them (identity-v1 section 5).
let grantsSchema = Schema.limited(.array(.reference(GrantBody.schemaName)), .init(maxItems: GrantBody.maxGrants))
let contextDescription =
    "aws-kms-v1: the alternative to aad (not both), encoded as the AWS Encryption SDK does; the AWS door's EncryptionContext"
let keyReference = Schema.string(description: "key id (key_…) or alias", pattern: "^[A-Za-z0-9._-]{1,64}$")
let ciphertextSchema = Schema.string(
    description: "kms:v1:<keyId>:<version>:<b64>; opaque to clients",
    pattern: "^kms:v1:[A-Za-z0-9_-]+:[1-9][0-9]*:[A-Za-z0-9+/]+={0,2}$")

extension EmptyBody: Documented {
    static var schema: Schema { .object([]) }
    static var example: EmptyBody { EmptyBody() }
}

extension SessionInitResponse: Documented {
    static var schema: Schema {
        .object([
            .init("sessionId", .string(pattern: "^[A-Za-z0-9_-]{22,64}$"), "names the pending session"),
            .init("algorithm", .string(enumeration: [SessionInitResponse.keyExchangeAlgorithm])),
            .init("publicKey", .string(description: "SPKI PEM of the RSA-4096 identity key")),
            .init("fingerprint", .string(pattern: "^SHA256:[0-9a-f]{64}$"), "compare with the pinned one"),
            .init("expiresAt", .timestamp, "the pending session's end"),
        ])
    }
    static var example: SessionInitResponse {
        SessionInitResponse(
            sessionId: "kP3x9QvZ2mWc7RtY5bLn8AbCdEfGhIjK", algorithm: SessionInitResponse.keyExchangeAlgorithm,
            publicKey:
                "-----BEGIN PUBLIC KEY-----\nMIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA…\n-----END PUBLIC KEY-----\n",
            fingerprint: "SHA256:" + String(repeating: "ab", count: 32), expiresAt: exampleTime)
    }
}

extension KeyExchangeRequest: Documented {
    static var schema: Schema {
        .object([
            .init("sessionId", .string(), "from /session/init"),
            .init("wrappedKey", .base64("RSA-OAEP-256 of 32 random bytes (512 bytes)")),
            .init(
                "clientKey", .string(), required: false,
                "identity-v1: SHA256: + 64 hex of the enrolled client's raw Ed25519 public key (required unless KMS_CLIENT_AUTH=off)"
            ),
            .init(
                "signature", .base64("identity-v1: Ed25519 signature (64 bytes) over the client-auth transcript"),
                required: false),
        ])
    }
    static var example: KeyExchangeRequest {
        KeyExchangeRequest(
            sessionId: "kP3x9QvZ2mWc7RtY5bLn8AbCdEfGhIjK", wrappedKey: Base64.encode(Data(repeating: 0x5A, count: 512)),
            clientKey: "SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9",
            signature: Base64.encode(Data(repeating: 0x11, count: 64)))
    }
}

extension KeyExchangeResponse: Documented {
    static var schema: Schema {
        .object([
            .init("sessionId", .string()), .init("expiresAt", .timestamp), .init("ttlMs", .integer(minimum: 1)),
            .init("sliding", .boolean), .init("maxLifetimeMs", .integer(minimum: 1)),
        ])
    }
    static var example: KeyExchangeResponse {
        KeyExchangeResponse(
            sessionId: "kP3x9QvZ2mWc7RtY5bLn8AbCdEfGhIjK", expiresAt: exampleTime, ttlMs: 900_000, sliding: true,
            maxLifetimeMs: 86_400_000)
    }
}

extension RotateTokenRequest: Documented {
    static var schema: Schema {
        .object([
            .init(
                "token", .string(pattern: "^[A-Za-z0-9._~-]{32,256}$"), required: false,
                "omit to get a server-issued one")
        ])
    }
    static var example: RotateTokenRequest { RotateTokenRequest(token: nil) }
}

extension RotateTokenResponse: Documented {
    static var schema: Schema { .object([.init("token", .string()), .init("expiresAt", .timestamp)]) }
    static var example: RotateTokenResponse {
        RotateTokenResponse(token: "pfx_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE", expiresAt: exampleTime)
    }
}

extension RandomRequest: Documented {
    static var schema: Schema { .object([.init("bytes", .integer(minimum: 1, maximum: 1024))]) }
    static var example: RandomRequest { RandomRequest(bytes: 16) }
}

extension RandomResponse: Documented {
    static var schema: Schema { .object([.init("random", .base64("CSPRNG bytes"))]) }
    static var example: RandomResponse { RandomResponse(random: "AAECAwQFBgcICQoLDA0ODw==") }
}

extension GenerateKeyRequest: Documented {
    static var schema: Schema {
        .object([
            .init(
                "alias", aliasSchema, required: false,
                "unique; not starting with key_, not generate or rotate, not a UUID's form (8-4-4-4-12 hexadecimal digits)"
            ),
            .init("description", descriptionSchema, required: false, "0 to 8,192 UTF-8 bytes (default empty)"),
            .init("tags", tagsSchema, required: false, "at most 50; keys 1 to 128 characters, not aws:"),
        ])
    }
    static var example: GenerateKeyRequest {
        GenerateKeyRequest(alias: "photos", description: "phone photo library", tags: ["owner": "ana"])
    }
}

extension RotateKeyRequest: Documented {
    static var schema: Schema { .object([.init("keyId", keyReference)]) }
    static var example: RotateKeyRequest { RotateKeyRequest(keyId: "photos") }
}

extension KeyVersionResponse: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", .string()), .init("version", .integer(minimum: 1)),
            .init("createdAt", .timestamp, "the new version's"), .init("status", .string(enumeration: ["active"])),
        ])
    }
    static var example: KeyVersionResponse {
        KeyVersionResponse(keyId: exampleKeyId, version: 2, createdAt: exampleTime, status: "active")
    }
}

extension KeyMetadata.Version: Documented {
    static var schemaName: String { "KeyVersionMetadata" }
    static var schema: Schema {
        .object([
            .init("version", .integer(minimum: 1)), .init("createdAt", .timestamp),
            .init("status", .string(enumeration: ["active", "grace", "retired"])),
            .init("graceUntil", .timestamp, required: false, "present on every non-active version"),
        ])
    }
    static var example: KeyMetadata.Version {
        KeyMetadata.Version(version: 1, createdAt: exampleTime, status: "grace", graceUntil: "2026-12-06T12:00:00.000Z")
    }
}

extension KeyMetadata: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", .string()), .init("alias", .string(), required: false), .init("createdAt", .timestamp),
            .init("activeVersion", .integer(minimum: 1)),
            .init("versions", .array(.reference(KeyMetadata.Version.schemaName))),
            .init("state", .string(enumeration: ["enabled", "disabled", "pending_deletion"])),
            .init("deletionDate", .timestamp, required: false, "when a pending_deletion key is deleted for good"),
            .init("pendingWindowDays", .integer(minimum: 7, maximum: 30), required: false),
            .init("rotationPeriodDays", .nullable(.integer(minimum: 1, maximum: 3650)), "null: no automatic rotation"),
            .init("nextRotationAt", .timestamp, required: false),
            .init("description", descriptionSchema), .init("tags", tagsSchema),
            .init("aliases", .array(aliasSchema), "sorted by bytes; `alias` is the first"),
            .init(
                "awsKeyId", .string(pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
                required: false, "aws-kms-v1: the AWS door's KeyId of this key"),
        ])
    }
    static var example: KeyMetadata {
        var metadata = KeyMetadata(
            keyId: exampleKeyId, alias: "photos", createdAt: exampleTime, activeVersion: 2,
            versions: [
                .example, .init(version: 2, createdAt: "2026-11-29T12:00:00.000Z", status: "active", graceUntil: nil),
            ])
        metadata.rotationPeriodDays = 90
        metadata.nextRotationAt = "2027-02-27T12:00:00.000Z"
        metadata.tags = ["owner": "ana"]
        metadata.aliases = ["photos", "photos-2026"]
        metadata.awsKeyId = "deadbeef-0000-0000-0000-000000000000"
        return metadata
    }
}

extension KeyListResponse: Documented {
    static var schema: Schema {
        .object([
            .init("keys", .array(.reference(KeyMetadata.schemaName))),
            .init("next", .string(), required: false, "pass as `after` for the next page; absent on the last"),
        ])
    }
    static var example: KeyListResponse { KeyListResponse(keys: [.example], next: exampleKeyId) }
}

extension EncryptRequest: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", keyReference), .init("plaintext", .base64("at most 65,536 bytes", maxBytes: maxCallerBytes)),
            .init(
                "aad",
                .base64("at most 65,536 bytes, bound to the ciphertext; absent equals empty", maxBytes: maxCallerBytes),
                required: false),
            .init("encryptionContext", contextSchema, required: false, contextDescription),
        ])
    }
    static var example: EncryptRequest {
        EncryptRequest(keyId: "photos", plaintext: Data("hello, photos".utf8), aad: Data("img_0001.jpg".utf8))
    }
}

extension CiphertextResponse: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", .string()), .init("version", .integer(minimum: 1)), .init("ciphertext", ciphertextSchema),
        ])
    }
    static var example: CiphertextResponse {
        CiphertextResponse(keyId: exampleKeyId, version: 2, ciphertext: exampleCiphertext)
    }
}

extension CiphertextRequest: Documented {
    static var schema: Schema {
        .object([
            .init(
                "ciphertext", .string(description: "kms:v1:<keyId>:<version>:<b64>, or an AWS CiphertextBlob's base64"),
                "opaque to clients"),
            .init(
                "aad", .base64("the aad given at encryption (at most 65,536 bytes)", maxBytes: maxCallerBytes),
                required: false),
            .init("encryptionContext", contextSchema, required: false, contextDescription),
        ])
    }
    static var example: CiphertextRequest {
        CiphertextRequest(ciphertext: exampleCiphertext, aad: Data("img_0001.jpg".utf8))
    }
}

extension DecryptResponse: Documented {
    static var schema: Schema {
        .object([.init("keyId", .string()), .init("version", .integer(minimum: 1)), .init("plaintext", .base64(""))])
    }
    static var example: DecryptResponse {
        DecryptResponse(keyId: exampleKeyId, version: 2, plaintext: Data("hello, photos".utf8))
    }
}

extension DataKeyRequest: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", keyReference),
            .init("bytes", .integer(minimum: 16, maximum: 64), required: false, "default 32"),
            .init("aad", .base64("at most 65,536 bytes", maxBytes: maxCallerBytes), required: false),
            .init("encryptionContext", contextSchema, required: false, contextDescription),
        ])
    }
    static var example: DataKeyRequest { DataKeyRequest(keyId: "backup", bytes: 32, aad: nil) }
}

extension DataKeyResponse: Documented {
    static var schema: Schema {
        .object([
            .init("keyId", .string()), .init("version", .integer(minimum: 1)),
            .init("plaintext", .base64("the data key: use it, then forget it")),
            .init("ciphertext", ciphertextSchema, "store this beside the data; decrypt it to get the key back"),
        ])
    }
    static var example: DataKeyResponse {
        DataKeyResponse(
            keyId: exampleKeyId, version: 2, plaintext: Data(repeating: 7, count: 32), ciphertext: exampleCiphertext)
    }
}

extension ErrorBody.Detail: Documented {
    static var schemaName: String { "ErrorDetail" }
    static var schema: Schema {
        .object([
            .init("code", .string(enumeration: ErrorCode.allCases.map(\.rawValue))), .init("message", .string()),
            .init("requestId", .string()), .init("field", .string(), required: false, "the offending request field"),
        ])
    }
    static var example: ErrorBody.Detail {
        ErrorBody.Detail(
            code: "invalid_request", message: "`bytes` must be between 1 and 1024", requestId: "o48Gloj_VwPbBVdB",
            field: "bytes")
    }
}

extension ErrorBody: Documented {
    static var schema: Schema { .object([.init("error", .reference(ErrorBody.Detail.schemaName))]) }
    static var example: ErrorBody { ErrorBody(error: .example) }
}

extension HealthController.Health: Documented {
    static var schemaName: String { "Health" }
    static var schema: Schema { .object([.init("status", .string(enumeration: ["ok"]))]) }
    static var example: HealthController.Health { HealthController.Health() }
}

/// The sealed envelope (schema only: it is built from bytes, not Codable).
enum EnvelopeSchema {
    static let name = "Envelope"
    static let schema = Schema.object([
        .init("seq", .integer(minimum: 0, maximum: Int64(SealedEnvelope.maxSeq)), "echoes the request's in responses"),
        .init("iv", .base64("12 random bytes")), .init("ciphertext", .base64("AES-256-GCM of the inner JSON")),
        .init("tag", .base64("16 bytes")),
    ])
}

extension SessionInfoResponse: Documented {
    static var schema: Schema {
        .object([
            .init("sessionId", .string()), .init("expiresAt", .timestamp),
            .init("client", .reference(SessionInfoResponse.Client.schemaName), required: false),
        ])
    }
    static var example: SessionInfoResponse {
        SessionInfoResponse(
            sessionId: "kP3x9QvZ2mWc7RtY5bLn8AbCdEfGhIjK", expiresAt: "2026-11-29T12:15:00.000Z",
            client: SessionInfoResponse.Client.example)
    }
}

extension SessionInfoResponse.Client: Documented {
    static var schemaName: String { "SessionClient" }
    static var schema: Schema {
        .object([
            .init("clientId", .string()), .init("name", .string()), .init("fingerprint", .string()),
            .init("grants", .array(.reference(GrantBody.schemaName))),
        ])
    }
    static var example: SessionInfoResponse.Client {
        SessionInfoResponse.Client(
            clientId: "cli_AAECAwQFBgcICQoLDA0ODw", name: "laptop",
            fingerprint: "SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9",
            grants: [GrantBody.example])
    }
}

extension GrantBody: Documented {
    static var schemaName: String { "Grant" }
    static var schema: Schema {
        .object([
            .init(
                "keys",
                .limited(.array(.string()), .init(minItems: 1, maxItems: GrantBody.maxPatterns, uniqueItems: true)),
                "*, a keyId, an alias, or an alias start followed by *"),
            .init(
                "allow",
                .limited(
                    .array(.string(enumeration: Permission.allCases.map(\.rawValue))),
                    .init(minItems: 1, uniqueItems: true)), "permissions: keys:create … clients:manage"),
        ])
    }
    static var example: GrantBody { GrantBody(keys: ["photos", "backup-*"], allow: ["crypto:encrypt"]) }
}

extension AddClientRequest: Documented {
    static var schema: Schema {
        .object([
            .init(
                "name", .string(pattern: "^[a-z0-9][a-z0-9._-]{0,62}$"),
                "[a-z0-9][a-z0-9._-]{0,62}, not starting with cli_; unique among active clients"),
            .init("publicKey", .base64("the device's raw 32-byte Ed25519 public key", maxBytes: 32, exact: true)),
            .init("grants", grantsSchema, "at most 32; [] allows sessions only"),
        ])
    }
    static var example: AddClientRequest {
        AddClientRequest(name: "phone", publicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", grants: [.example])
    }
}

extension SetGrantsRequest: Documented {
    static var schema: Schema {
        .object([.init("grants", grantsSchema, "replaces every grant of the client; at most 32")])
    }
    static var example: SetGrantsRequest { SetGrantsRequest(grants: [.example]) }
}

extension ClientBody: Documented {
    static var schemaName: String { "Client" }
    static var schema: Schema {
        .object([
            .init("clientId", .string()), .init("name", .string()),
            .init("publicKey", .base64("raw 32-byte Ed25519 public key")),
            .init("fingerprint", .string(), "SHA256: + hex of the raw public key (the key exchange's clientKey)"),
            .init("grants", .array(.reference(GrantBody.schemaName))), .init("createdAt", .timestamp),
            .init("revokedAt", .timestamp, required: false),
            .init("accessKeys", .array(.reference(ClientBody.AccessKey.schemaName))),
        ])
    }
    static var example: ClientBody {
        ClientBody(
            clientId: "cli_AAECAwQFBgcICQoLDA0ODw", name: "phone",
            publicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            fingerprint: "SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9", grants: [.example],
            createdAt: "2026-11-29T12:00:00.000Z", revokedAt: nil, accessKeys: [.example])
    }
}

extension ClientBody.AccessKey: Documented {
    static var schemaName: String { "AccessKey" }
    static var schema: Schema {
        .object([
            .init("accessKeyId", .string()), .init("createdAt", .timestamp),
            .init("revokedAt", .timestamp, required: false),
        ])
    }
    static var example: ClientBody.AccessKey {
        ClientBody.AccessKey(
            accessKeyId: "AKIAABCDEFGHIJ234567", createdAt: "2026-11-29T12:00:00.000Z", revokedAt: nil)
    }
}

extension ClientListResponse: Documented {
    static var schema: Schema {
        .object([
            .init("clients", .array(.reference(ClientBody.schemaName))),
            .init("next", .string(), required: false, "present when more clients follow: pass it as `after`"),
        ])
    }
    static var example: ClientListResponse { ClientListResponse(clients: [.example], next: nil) }
}

extension AccessKeyCreated: Documented {
    static var schema: Schema {
        .object([
            .init("accessKeyId", .string()), .init("secretAccessKey", .string(), "shown this once; keep it secret"),
            .init("createdAt", .timestamp),
        ])
    }
    static var example: AccessKeyCreated {
        AccessKeyCreated(
            accessKeyId: "AKIAABCDEFGHIJ234567", secretAccessKey: "c2VjcmV0IGFjY2VzcyBrZXkgZm9yIHRoZSBkb2Nz",
            createdAt: "2026-11-29T12:00:00.000Z")
    }
}
