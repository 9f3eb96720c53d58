public import Foundation

/// One lifecycle change to a key (lifecycle-v1 sections 1, 2 and 4), and
/// the rules that decide it. Applied by `KeyRing.change` under
/// compare-and-set; `apply` answers whether anything changed, so that
/// repeats are no-ops and are not audited (rule 9.5).
public enum KeyChange: Sendable, Equatable {
    case disable
    case enable
    case scheduleDeletion(days: Int)
    case cancelDeletion
    /// nil clears the schedule.
    case rotation(periodDays: Int?)
    case labels(KeyLabels)
    /// aws-kms-v1: the stored key policy (kept verbatim, never evaluated).
    case policy(String)

    public static let pendingWindowDays = 7...30
    public static let defaultPendingWindowDays = 30
    public static let rotationPeriodDays = 1...3650

    /// The audit event type.
    public var auditType: String {
        switch self {
        case .disable: return "key.disable"
        case .enable: return "key.enable"
        case .scheduleDeletion: return "key.schedule-deletion"
        case .cancelDeletion: return "key.cancel-deletion"
        case .rotation: return "key.rotation-schedule"
        case .labels: return "key.labels"
        case .policy: return "key.policy"
        }
    }

    /// Whether the change writes a date from the host's clock (a deletion date, the next rotation), which
    /// `KeyRing.change` refuses while that clock differs from the reference (`ReferenceClock`).
    public var writesADate: Bool {
        switch self {
        case .scheduleDeletion: return true
        case .rotation(let days): return days != nil
        case .disable, .enable, .cancelDeletion, .labels, .policy: return false
        }
    }

    /// Changes `record` as of `now`; throws the section 1 `409`s.
    public func apply(to record: inout KeyRecord, now: Date) throws(KMSError) -> Bool {
        let before = record
        switch self {
        case .disable, .enable:
            guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
            record.state = self == .disable ? .disabled : .enabled
        case .scheduleDeletion(let days):
            guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
            record.state = .pendingDeletion
            record.pendingWindowDays = days
            record.deletionDate = now.addingTimeInterval(Double(days) * 86_400)
        case .cancelDeletion:
            guard record.state == .pendingDeletion else {
                throw KMSError(
                    .keyNotPendingDeletion, "the key is not scheduled for deletion; nothing to cancel")
            }
            record.state = .disabled
            record.deletionDate = nil
            record.pendingWindowDays = nil
        case .rotation(let days):
            guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
            if let days {
                guard record.state == .enabled else { throw KMSError.keyDisabled }
                record.rotationPeriodDays = days
                record.nextRotationAt = now.addingTimeInterval(Double(days) * 86_400)
                return true  // rule 9.6: setting a period, even the same one, restarts it
            }
            record.rotationPeriodDays = nil
            record.nextRotationAt = nil
        case .labels(let labels):
            guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
            if let description = labels.description { record.description = description }
            record.tags = try labels.applied(to: record.tags)
        case .policy(let text):
            guard record.state != .pendingDeletion else { throw KMSError.keyPendingDeletion }
            record.policy = text
        }
        return record != before || !record.hasSameTextBytes(as: before)
    }
}

extension KeyRecord {
    /// Whether the description, policy and tags are the same bytes. `==` on
    /// `String` is canonical equivalence: a description changed from `café`
    /// composed to `cafe` + U+0301, or a tag value from `K` to the Kelvin sign,
    /// read as no change, and the old bytes stayed stored (a review).
    func hasSameTextBytes(as other: KeyRecord) -> Bool {
        description.bytesEqual(other.description) && (policy ?? "").bytesEqual(other.policy ?? "")
            && (policy == nil) == (other.policy == nil) && tags.count == other.tags.count
            && tags.allSatisfy { key, value in
                guard let index = other.tags.index(forKey: key) else { return false }
                return other.tags.keys[index].bytesEqual(key) && other.tags.values[index].bytesEqual(value)
            }
    }
}

extension KeyRecord {
    /// lifecycle-v1 section 1: only an enabled key encrypts, decrypts,
    /// rewraps, makes data keys and rotates.
    public func checkUsable() throws(KMSError) {
        switch state {
        case .enabled: return
        case .disabled: throw KMSError.keyDisabled
        case .pendingDeletion: throw KMSError.keyPendingDeletion
        }
    }
}

extension KMSError {
    public static let keyDisabled = KMSError(
        .keyDisabled, "the key is disabled; enable it (POST /keys/{keyId}/enable) to use it again")
    public static let keyPendingDeletion = KMSError(
        .keyPendingDeletion,
        "the key is scheduled for deletion; cancel the deletion (POST /keys/{keyId}/cancel-deletion) to keep it")
}
