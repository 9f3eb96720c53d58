import KMSCore
import KMSProtocol

/// lifecycle-v1 sections 1, 2 and 4: state, deletion, the rotation schedule,
/// description and tags of one key. Every route is a sealed `POST` needing
/// `keys:manage` on the key, answering its metadata; a change is audited
/// with a durable intent first, and a no-op repeat is answered without an entry.
struct KeyLifecycleController: Sendable {
    let keys: KeyRing
    let audit: Auditor

    /// The refusal of a change that writes a date while the host's clock is off (`ReferenceClock`), for the
    /// OpenAPI descriptions of the routes that make one (rotate, schedule-deletion, rotation).
    static let clockNote =
        " While this server's clock differs from its reference (the database's, or the time counted since start) by more than 60 s, 503 server_busy: a date written from a wrong clock would be wrong."

    func register(on routes: inout RouteBuilder) {
        route(
            &routes, WirePath.disableKey, EmptyBody.self, "Disable a key",
            "enabled or disabled → disabled: the key refuses every crypto operation and rotation (409 key_disabled) until enabled. A repeat is a no-op.",
            [.keyPendingDeletion]
        ) { _ throws(KMSError) in .disable }
        route(
            &routes, WirePath.enableKey, EmptyBody.self, "Enable a key",
            "disabled or enabled → enabled. A repeat is a no-op.", [.keyPendingDeletion]
        ) { _ throws(KMSError) in .enable }
        route(
            &routes, WirePath.scheduleKeyDeletion, ScheduleDeletionRequest.self, "Schedule a key's deletion",
            "enabled or disabled → pending_deletion; deletionDate = now + pendingWindowDays (7 to 30, default 30) days. Until then it can be cancelled; after, the scheduler deletes the key and its aliases for good, and its ciphertexts answer 404 key_not_found. Backups keep a wrapped copy."
                + Self.clockNote,
            [.keyPendingDeletion, .serverBusy]
        ) { input throws(KMSError) in
            .scheduleDeletion(days: input.pendingWindowDays ?? KeyChange.defaultPendingWindowDays)
        }
        route(
            &routes, WirePath.cancelKeyDeletion, EmptyBody.self, "Cancel a key's deletion",
            "pending_deletion → disabled (enable it again as a second, deliberate step).", [.keyNotPendingDeletion]
        ) { _ throws(KMSError) in .cancelDeletion }
        route(
            &routes, WirePath.keyRotationSchedule, RotationScheduleRequest.self, "Set automatic rotation",
            "periodDays 1 to 3650 sets nextRotationAt = now + period (enabled keys only); null clears the schedule (also on a disabled key). The scheduler rotates a due key once, whatever the number of instances."
                + Self.clockNote,
            [.keyDisabled, .keyPendingDeletion, .serverBusy]
        ) { input throws(KMSError) in .rotation(periodDays: input.periodDays) }
        route(
            &routes, WirePath.keyDescription, DescriptionRequest.self, "Set a key's description",
            "Replaces the description. Refused on keys pending deletion.", [.keyPendingDeletion]
        ) { input throws(KMSError) in .labels(KeyLabels(description: input.description)) }
        route(
            &routes, WirePath.keyTags, TagsRequest.self, "Change a key's tags",
            "`set` overwrites, `remove` deletes (an absent tag is a no-op); at most 50 tags after the change. A key that reads the same as a stored tag key but is other bytes (K and the Kelvin sign) is 400, field set.<key> or remove[i]. Refused on keys pending deletion.",
            [.keyPendingDeletion]
        ) { input throws(KMSError) in .labels(KeyLabels(set: input.set ?? [:], remove: input.remove ?? [])) }
    }

    private func route<Inner: StrictDecodable & Documented>(
        _ routes: inout RouteBuilder, _ path: String, _ inner: Inner.Type, _ summary: String, _ description: String,
        _ errors: [ErrorCode], change: @escaping @Sendable (Inner) throws(KMSError) -> KeyChange
    ) {
        routes.sealed(
            .post, path, inner, permission: .key(.keysManage) { _, call in call.context.parameters.get("keyId") },
            doc: RouteDoc(
                tag: "lifecycle", summary: summary, description: description + " {keyId} may be an alias.",
                errors: [.keyNotFound] + errors)
        ) { input, call throws(KMSError) in
            let asked = call.context.parameters.get("keyId") ?? ""
            let reference = call.key(asked)
            let change = try change(input)
            // The 409s, the clock and a no-op are decided before anything is recorded.
            let (current, changes) = try await keys.preview(change, on: reference)
            guard changes else { return keys.metadata(current) }
            // `key` as asked (docs/audit.md; a probe found the checked keyId there), and the keyId in every
            // entry, the intent and a failure included: an alias may move later (a review).
            let fields = [("key", asked), ("keyId", current.keyId)]
            let outcome = try await audit.durableChange(change.auditType, fields, call) {
                () throws(KMSError) in
                try await keys.change(change, reportingWriteOn: reference)
            } result: { outcome in
                KeyRing.changeFields(outcome)
            }
            return keys.metadata(outcome.record)
        }
    }
}
