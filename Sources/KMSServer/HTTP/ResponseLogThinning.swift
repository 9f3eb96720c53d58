import Foundation

/// Which answers' log lines are written, one decision for both doors (`EdgeResponder`, `AWSResponder`).
///
/// `429` and `5xx` answers are thinned by the address that caused them (a flood of `/session/init` past
/// its bounds wrote a line per refusal, 212 MB in a minute and a half). Failures the operator must act
/// on (a full disk, a storage outage, an internal error) are thinned apart, by their code: sharing the
/// addresses' budget, a flood of `429`s from five addresses (an IPv6 client has as many as it likes) kept
/// every `request failed` line, the only ones that carry the cause, out of the log (a review).
struct ResponseLogThinning: Sendable {
    /// `429` and `5xx` answers: once a second per address, five a second in all.
    let busy = RefusalLogSampler(perAddress: 1, perSecond: 5)
    /// Failures that need the operator: once a second per code, five a second in all.
    let attention = RefusalLogSampler(perAddress: 1, perSecond: 5)

    /// Its two kinds, named for `LeftOutLogLines` after `door`: the request lines (info) and the failure
    /// lines (error).
    func kinds(door: String) -> [LeftOutLogLines.Kind] {
        [
            .init(name: door + " 429 and 5xx answers", sampler: busy, level: .info),
            .init(name: door + " failures that need the operator", sampler: attention, level: .error),
        ]
    }

    /// Whether to log the answer's lines (nil: not); when yes, how many lines of its kind were left out
    /// since the last one written (0 for answers that are never thinned). `attention`: the failure's
    /// `kind` when it needs the operator.
    func admit(status: Int, attention kind: String?, address: String, now: Date) -> Int? {
        if let kind { return attention.admit(kind, now: now) }
        guard status == 429 || status >= 500 else { return 0 }
        return busy.admit(address, now: now)
    }

    /// What a failure that needs the operator is thinned by: its code and the fixed start of its detail
    /// (up to a digit, at most 40 bytes), so causes that share a code (`server_busy`: a storage outage,
    /// a clock off its reference, lost write races) do not take each other's line (a review: clients
    /// retrying a rotation while the clock was off kept a storage outage's cause out of the log).
    static func kind(code: String, detail: String?) -> String {
        let start = (detail ?? "").utf8.prefix { !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }.prefix(40)
        return code + ":" + String(decoding: start, as: UTF8.self)
    }
}
