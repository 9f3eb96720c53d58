import Crypto
public import Foundation

/// Offline verification of an audit log (`kms audit verify`).
///
/// Checks, entry by entry: the line parses; seq is the previous seq + 1; prev
/// is the SHA-256 of the previous line; the Ed25519 signature holds. The first
/// failure is reported with what it means. A deleted *tail* leaves a valid
/// shorter chain: only a checkpoint kept elsewhere (`kms audit checkpoint`)
/// reveals it.
public enum AuditVerifier {
    public struct Checkpoint: Sendable, Equatable {
        public let seq: UInt64
        public let hash: String

        public init(seq: UInt64, hash: String) {
            self.seq = seq
            self.hash = hash
        }

        /// `SEQ:HASH`, as `kms audit checkpoint` prints it.
        public init?(parsing text: String) {
            let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":")
            guard parts.count == 2, let seq = UInt64(parts[0]), parts[1].count == 64 else { return nil }
            self.init(seq: seq, hash: String(parts[1]).lowercased())
        }

        public var text: String { "\(seq):\(hash)" }
    }

    public struct Report: Sendable, Equatable {
        public var entries = 0
        public var first: UInt64?
        public var last: UInt64?
        public var lastHash = AuditChain.genesis
        /// The first problem: where, and what it means. nil when all holds.
        public var failure: String?
        public var isValid: Bool { failure == nil }
    }

    public static func verify(
        files: [URL], publicKey: Curve25519.Signing.PublicKey, checkpoint: Checkpoint? = nil,
        allowMidChainStart: Bool = false
    ) -> Report {
        var report = Report()
        var expected: UInt64 = 1
        var prev = AuditChain.genesis
        var checkpointSeen = false
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                report.failure = "\(file.path): cannot be read"
                return report
            }
            if !data.isEmpty, data.last != 0x0A {
                report.failure = "\(file.lastPathComponent): the last line is incomplete (truncated or torn write)"
                return report
            }
            let rawLines = String(decoding: data, as: UTF8.self).split(
                separator: "\n", omittingEmptySubsequences: false
            )
            .dropLast()
            let seqsInFile = Set(rawLines.compactMap { AuditChain.parse(String($0))?.seq })
            for (index, raw) in rawLines.enumerated() {
                let line = String(raw)
                let place = "\(file.lastPathComponent) line \(index + 1)"
                guard let entry = AuditChain.parse(line) else {
                    report.failure = "\(place): not an audit entry (edited or corrupted)"
                    return report
                }
                if report.entries == 0, allowMidChainStart, entry.seq > 1 {
                    expected = entry.seq
                    prev = entry.prev
                }
                if entry.seq > expected, seqsInFile.contains(expected) {
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
                guard AuditChain.verifySignature(entry, publicKey: publicKey) else {
                    report.failure =
                        report.entries == 0
                        ? "\(place): the signature does not verify: wrong public key, or the entry was edited"
                        : "\(place): the signature does not verify: the entry was edited"
                    return report
                }
                guard entry.prev == prev else {
                    report.failure =
                        "\(place): prev does not match the previous entry: an entry was edited, inserted or removed before it"
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
                report.entries += 1
                report.first = report.first ?? entry.seq
                report.last = entry.seq
                report.lastHash = prev
                expected = entry.seq + 1
            }
        }
        if let checkpoint, !checkpointSeen {
            report.failure =
                "the log ends at seq \(report.last ?? 0) but the checkpoint names seq \(checkpoint.seq): its tail was truncated"
        }
        return report
    }
}
