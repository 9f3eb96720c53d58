import Testing

@testable import KMSServer

/// aws-kms-v1 section 2: every operation of AWS KMS is either served or
/// answered `UnsupportedOperationException`; only names AWS does not have
/// get `UnknownOperationException`.
@Suite struct AWSOperationListTests {
    /// The operations of AWS KMS's model (`kms/2014-11-01/service-2.json` in
    /// botocore 1.43.11, 2026, and `Encapsulate`/`Decapsulate`, which 1.44.8
    /// added): when AWS adds one, add it here and to a list.
    static let awsOperations: [String] = [
        "CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore", "CreateGrant",
        "CreateKey", "Decapsulate", "Decrypt", "DeleteAlias", "DeleteCustomKeyStore", "DeleteImportedKeyMaterial",
        "DeriveSharedSecret", "DescribeCustomKeyStores", "DescribeKey", "DisableKey", "DisableKeyRotation",
        "DisconnectCustomKeyStore", "EnableKey", "EnableKeyRotation", "Encapsulate", "Encrypt", "GenerateDataKey",
        "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext",
        "GenerateMac", "GenerateRandom", "GetKeyLastUsage", "GetKeyPolicy", "GetKeyRotationStatus",
        "GetParametersForImport", "GetPublicKey", "ImportKeyMaterial", "ListAliases", "ListGrants",
        "ListKeyPolicies", "ListKeyRotations", "ListKeys", "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy",
        "ReEncrypt", "ReplicateKey", "RetireGrant", "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion",
        "Sign", "TagResource", "UntagResource", "UpdateAlias", "UpdateCustomKeyStore", "UpdateKeyDescription",
        "UpdatePrimaryRegion", "Verify", "VerifyMac",
    ]

    @Test func everyOperationOfAWSIsServedOrUnsupported() {
        let served = Set(AWSOperations.table.keys)
        #expect(Self.awsOperations.count == 56)
        #expect(served.count == 28)
        #expect(served.isDisjoint(with: AWSOperations.unsupported))
        for operation in Self.awsOperations {
            #expect(served.contains(operation) || AWSOperations.unsupported.contains(operation), "\(operation)")
        }
        // Nothing listed that AWS does not have (a typo would answer the wrong exception).
        #expect(served.union(AWSOperations.unsupported) == Set(Self.awsOperations))
    }
}
