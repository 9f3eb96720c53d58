import Crypto
public import Foundation
import KMSProtocol

/// Offline verification of an audit log (`kms audit verify`).
///
/// Checks, line by line: the line parses; an entry's seq is the previous seq
/// + 1; prev is the SHA-256 of the previous line; a checkpoint names the last
/// entry and its Ed25519 signature holds (as does a format-1 entry's own). The
/// first failure is reported with what it means; entries after the last
/// checkpoint are reported as not yet signed. A deleted *tail* leaves a valid
/// shorter chain: only a checkpoint kept elsewhere (`kms audit checkpoint`)
/// reveals it.
public enum AuditVerifier {
    /// The first signature of a log fails: the key given is not the one that signed it, or it was edited.
    static let firstSignatureFails =
        "the first signature does not verify under this public key: the log was signed by another audit key (one a restore with --replace-server-secrets replaced: verify it with the key the restore named, --public-key), or it was edited"

    public struct Checkpoint: Sendable, Equatable {
        public let seq: UInt64
        public let hash: String

        public init(seq: UInt64, hash: String) {
            self.seq = seq
            self.hash = hash
        }

        /// `SEQ:HASH`, as `kms audit checkpoint` prints it.
        public init?(parsing text: String) {
            let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(
                separator: ":", omittingEmptySubsequences: false)
            // Digits as printed: no sign, no leading zero (`+65`, `065` were taken for 65).
            guard parts.count == 2, parts[0].isDecimalDigits, parts[0] == "0" || parts[0].first != "0",
                let seq = UInt64(parts[0]), parts[1].count == 64
            else { return nil }
            self.init(seq: seq, hash: String(parts[1]).lowercased())
        }

        public var text: String { "\(seq):\(hash)" }
    }

    public struct Report: Sendable, Equatable {
        public var entries = 0
        public var first: UInt64?
        public var last: UInt64?
        /// The hash of the last entry's line (what `kms audit checkpoint` prints).
        public var lastHash = AuditChain.genesis
        /// Signed checkpoint lines (format 2) that hold.
        public var checkpoints = 0
        /// The last seq a signature covers (a checkpoint, or a format-1 entry's own).
        public var signedThrough: UInt64 = 0
        /// The hash of that entry's line: with `signedThrough`, what `kms audit checkpoint` prints, so
        /// that a checkpoint kept elsewhere never anchors entries no signature covers.
        public var signedHash: String?
        /// When the first entry no signature covers was written (nil when all are covered).
        public var firstUnsignedTime: String?
        /// The same as a date (nil when unreadable, or all are covered): what
        /// `kms audit verify --allow-unsigned-tail` compares with now, since a
        /// live server signs its tail within a second.
        public var firstUnsignedDate: Date?
        /// Ranges a start after a crash signed over (`audit.unsigned-tail`):
        /// chained, but written before any signature, so not tamper-evident.
        public var adoptedAtRestart: [ClosedRange<UInt64>] = []
        /// Where a log begins after an earlier one (`audit.new-log`): "seq N (time)". The chain from
        /// there holds, but what the earlier log held is not in these files.
        public var newLogStarts: [String] = []
        /// Where a start cut a half-written last line (`audit.repaired`): "seq N (time)". A crash's
        /// torn write, or a log's end cut while the server was stopped.
        public var repairs: [String] = []
        /// A last line still being written when the log was read (`lastLineMayBeInProgress`): the file it ends,
        /// read without it. nil otherwise.
        public var lineInProgress: String?
        /// The first problem: where, and what it means. nil when all holds.
        public var failure: String?
        /// The chain is intact and every signature present holds.
        public var isValid: Bool { failure == nil }
        /// Valid, and every entry was covered by a signature while the server ran.
        public var isFullySigned: Bool { isValid && unsignedTail == nil && adoptedAtRestart.isEmpty }

        /// What is not tamper-evident, in words (nil when fully signed).
        public var unsignedSummary: String? {
            var parts: [String] = []
            if let tail = unsignedTail {
                parts.append(
                    signedThrough == 0 && checkpoints == 0
                        ? "no entry is covered by a signature (entries \(tail.lowerBound)...\(tail.upperBound)), so neither their content nor the public key is checked"
                        : "entries \(tail.lowerBound)...\(tail.upperBound) (from \(firstUnsignedTime ?? "?")) come after the last signed checkpoint: a running server signs them within a second; anything else means a crash, or a tail rewritten while the server was stopped"
                )
            }
            for range in adoptedAtRestart {
                parts.append(
                    "entries \(range.lowerBound)...\(range.upperBound) were left unsigned by a crash and signed only by the next start (audit.unsigned-tail): their content is not tamper-evident"
                )
            }
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        }

        /// How old an unsigned tail may be and still count as a running server's
        /// last second (`kms audit verify --allow-unsigned-tail`, `kms doctor`): a
        /// running server signs its tail within a second (a disk that stalls
        /// longer refuses audited calls), so an older one was left by a crash
        /// or written while the server was stopped. Its time is the tail's own,
        /// which whoever wrote it chose: this bounds when a forged tail passes,
        /// it does not authenticate it (docs/audit.md).
        public static let liveTailAge: TimeInterval = 60

        /// Whether the only unsigned entries follow the last checkpoint and began within
        /// `liveTailAge` of `now` (either way), as a running server's do.
        public func unsignedOnlyAsALiveTail(now: Date = Date()) -> Bool {
            guard adoptedAtRestart.isEmpty, checkpoints > 0, unsignedTail != nil, let began = firstUnsignedDate else {
                return false
            }
            return abs(began.timeIntervalSince(now)) <= Self.liveTailAge
        }

        /// Entries after the last checkpoint: chained but not signed yet. A live
        /// server signs them within a second; a crash leaves them for the next
        /// start to cover (it records `audit.unsigned-tail`).
        public var unsignedTail: ClosedRange<UInt64>? {
            guard let last, last > signedThrough else { return nil }
            return max(signedThrough + 1, first ?? 1)...last
        }
    }

    /// `lastLineMayBeInProgress`: a running server holds the log's lock (`AuditWriterLock.isHeld`), so bytes
    /// after the last file's last LF may be a batch still being written, which a reader can see in part (the
    /// file grows as the write goes): not read, and not a failure (a review of 2026-12-06: verifying a live
    /// log under load could say BROKEN, a false tamper alarm). Without it they are a torn write, as before:
    /// a stopped server's next start cuts them.
    public static func verify(
        files: [URL], publicKey: Curve25519.Signing.PublicKey, checkpoint: Checkpoint? = nil,
        allowMidChainStart: Bool = false, lastLineMayBeInProgress: Bool = false
    ) -> Report {
        var report = Report()
        var expected: UInt64 = 1
        var prev = AuditChain.genesis
        var checkpointSeen = false
        var signatureSeen = false
        var lineCount = 0
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                report.failure = "\(file.path): cannot be read"
                return report
            }
            // Said after the lines before it are checked, so the report counts the entries that hold (a probe:
            // "after 0 valid entries" for a log whose every complete line was intact).
            let torn = !data.isEmpty && data.last != 0x0A
            for (index, raw) in AuditLines.forward(data).enumerated() {
                let place = "\(file.lastPathComponent) line \(index + 1)"
                guard let line = raw else {
                    report.failure =
                        "\(place): not an audit entry (not UTF-8, or a carriage return: edited or corrupted)"
                    return report
                }
                guard let entry = AuditChain.parse(line) else {
                    report.failure = "\(place): not an audit entry (edited or corrupted)"
                    return report
                }
                if lineCount == 0, allowMidChainStart, entry.seq > 1 || entry.kind == .checkpoint {
                    expected = entry.kind == .checkpoint ? entry.seq + 1 : entry.seq
                    prev = entry.prev
                }
                lineCount += 1
                if entry.kind == .checkpoint {
                    guard entry.seq + 1 == expected else {
                        report.failure =
                            entry.seq + 1 > expected
                            ? "\(place): a checkpoint for seq \(entry.seq) after seq \(expected - 1): entries \(expected)...\(entry.seq) were deleted"
                            : "\(place): a checkpoint for seq \(entry.seq) after seq \(expected - 1): entries were inserted or reordered"
                        return report
                    }
                    guard entry.prev == prev else {
                        report.failure =
                            "\(place): the checkpoint's prev does not match the line before it: an entry was edited, inserted or removed before it"
                        return report
                    }
                    guard AuditChain.verifySignature(entry, publicKey: publicKey) else {
                        report.failure =
                            signatureSeen
                            ? "\(place): the checkpoint's signature does not verify: an entry before it was edited (and the chain recomputed), or the checkpoint was"
                            : "\(place): \(Self.firstSignatureFails)"
                        return report
                    }
                    signatureSeen = true
                    prev = AuditChain.hash(line)
                    report.checkpoints += 1
                    report.signedThrough = entry.seq
                    report.signedHash = entry.prev
                    report.firstUnsignedTime = nil
                    report.firstUnsignedDate = nil
                    continue
                }
                // Looked for only when the seq jumps (the file read again, line by line, once).
                if entry.seq > expected, Self.holdsEntry(seq: expected, in: data) {
                    report.failure = "\(place): seq \(entry.seq) comes before seq \(expected): entries reordered"
                    return report
                }
                if entry.seq > expected {
                    report.failure =
                        "\(place): seq \(entry.seq) where \(expected) was expected: entries \(expected)...\(entry.seq - 1) were deleted"
                    return report
                }
                if entry.seq < expected {
                    report.failure =
                        "\(place): seq \(entry.seq) after \(expected - 1): entries reordered, duplicated or inserted"
                    return report
                }
                if entry.kind == .signedEntry {
                    guard AuditChain.verifySignature(entry, publicKey: publicKey) else {
                        report.failure =
                            signatureSeen
                            ? "\(place): the signature does not verify: the entry was edited"
                            : "\(place): \(Self.firstSignatureFails)"
                        return report
                    }
                    signatureSeen = true
                }
                guard entry.prev == prev else {
                    report.failure =
                        "\(place): prev does not match the previous line: an entry was edited, inserted or removed before it"
                    return report
                }
                prev = AuditChain.hash(line)
                if let checkpoint, checkpoint.seq == entry.seq {
                    checkpointSeen = true
                    guard checkpoint.hash == prev else {
                        report.failure = "\(place): differs from the checkpoint kept for seq \(checkpoint.seq)"
                        return report
                    }
                }
                if let adopted = entry.adopted { report.adoptedAtRestart.append(adopted) }
                let at =
                    "seq \(entry.seq) (\(Timestamp.parse(entry.time).map(Timestamp.format) ?? "an unreadable time"))"
                if entry.eventType == AuditEvent.newLog { report.newLogStarts.append(at) }
                if entry.eventType == AuditEvent.repaired { report.repairs.append(at) }
                report.entries += 1
                report.first = report.first ?? entry.seq
                report.last = entry.seq
                report.lastHash = prev
                if entry.kind == .signedEntry {
                    report.signedThrough = entry.seq
                    report.signedHash = prev
                    report.firstUnsignedTime = nil
                    report.firstUnsignedDate = nil
                } else if report.firstUnsignedTime == nil {
                    // Unsigned, so anyone who could write the log chose it: shown only as the timestamp it parses as.
                    report.firstUnsignedDate = Timestamp.parse(entry.time)
                    report.firstUnsignedTime = report.firstUnsignedDate.map(Timestamp.format) ?? "an unreadable time"
                }
                expected = entry.seq + 1
            }
            if torn {
                if lastLineMayBeInProgress, file == files.last {
                    report.lineInProgress = file.lastPathComponent
                    continue
                }
                report.failure = "\(file.lastPathComponent): the last line is incomplete (truncated or torn write)"
                return report
            }
        }
        if let checkpoint, !checkpointSeen {
            if let first = report.first, checkpoint.seq < first {
                // --partial from a later file: the checkpoint's entry is in a file not given.
                report.failure =
                    "the checkpoint names seq \(checkpoint.seq), before the first entry of these files (seq \(first)): give the file that holds it, or a newer checkpoint"
            } else {
                report.failure =
                    "the log ends at seq \(report.last ?? 0) but the checkpoint names seq \(checkpoint.seq): its tail was truncated"
            }
        }
        return report
    }

    /// Whether some entry line of `data` (not a checkpoint) has `seq`: a gap is then a reordering.
    private static func holdsEntry(seq: UInt64, in data: Data) -> Bool {
        AuditLines.forward(data).contains { line in
            guard let parsed = line.flatMap(AuditChain.parse) else { return false }
            return parsed.kind != .checkpoint && parsed.seq == seq
        }
    }
}
