import KMSProtocol

// lifecycle-v1's wire types.

let aliasSchema = Schema.string(pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
/// Its limit is in UTF-8 bytes, which JSON Schema cannot say: `maxLength` (characters) is the bound every
/// accepted description meets, not the whole rule.
let descriptionSchema = Schema.limited(
    .string(description: "0 to 8,192 UTF-8 bytes; no control characters but tab, CR, LF"),
    .init(maxLength: LabelRules.maxDescriptionBytes))
let tagsSchema = Schema.limited(
    .map(.limited(.string(description: "0 to 256 characters"), .init(maxLength: LabelRules.maxTagValueCharacters))),
    .init(maxProperties: LabelRules.maxTags))

extension ScheduleDeletionRequest: Documented {
    static var schema: Schema {
        .object([
            .init("pendingWindowDays", .integer(minimum: 7, maximum: 30), required: false, "days to wait; default 30")
        ])
    }
    static var example: ScheduleDeletionRequest { ScheduleDeletionRequest(pendingWindowDays: 7) }
}

extension RotationScheduleRequest: Documented {
    static var schema: Schema {
        .object([.init("periodDays", .nullable(.integer(minimum: 1, maximum: 3650)), "null stops automatic rotation")])
    }
    static var example: RotationScheduleRequest { RotationScheduleRequest(periodDays: 90) }
}

extension DescriptionRequest: Documented {
    static var schema: Schema { .object([.init("description", descriptionSchema)]) }
    static var example: DescriptionRequest { DescriptionRequest(description: "phone photo library") }
}

extension TagsRequest: Documented {
    static var schema: Schema {
        .object([
            .init("set", tagsSchema, required: false, "overwrites these tags"),
            .init(
                "remove",
                .limited(
                    .array(.limited(.string(), .init(minLength: 1, maxLength: LabelRules.maxTagKeyCharacters))),
                    .init(maxItems: LabelRules.maxTagsRemoved)),
                required: false, "tag keys to remove; absent ones are a no-op"),
        ])
    }
    static var example: TagsRequest { TagsRequest(set: ["owner": "ana"], remove: ["temp"]) }
}

extension CreateAliasRequest: Documented {
    static var schema: Schema { .object([.init("alias", aliasSchema), .init("keyId", keyReference)]) }
    static var example: CreateAliasRequest { CreateAliasRequest(alias: "photos-2026", keyId: exampleKeyId) }
}

extension MoveAliasRequest: Documented {
    static var schema: Schema { .object([.init("keyId", keyReference, "the key the alias should name")]) }
    static var example: MoveAliasRequest { MoveAliasRequest(keyId: exampleKeyId) }
}

extension AliasBody: Documented {
    static var schemaName: String { "Alias" }
    static var schema: Schema {
        .object([
            .init("alias", aliasSchema), .init("keyId", .string()), .init("createdAt", .timestamp),
            .init("updatedAt", .timestamp),
        ])
    }
    static var example: AliasBody {
        AliasBody(alias: "photos-2026", keyId: exampleKeyId, createdAt: exampleTime, updatedAt: exampleTime)
    }
}

extension AliasListResponse: Documented {
    static var schema: Schema {
        .object([
            .init("aliases", .array(.reference(AliasBody.schemaName))),
            .init("next", .string(), required: false, "pass as `after` for the next page; absent on the last"),
        ])
    }
    static var example: AliasListResponse { AliasListResponse(aliases: [.example], next: "photos-2026") }
}
