import KMSProtocol

/// The anti-replay window of protocol v1 section 4, after RFC 4303 section 3.4.3.
///
/// With `highest` the largest accepted seq, the seqs `highest-1023 ... highest`
/// that were not seen are accepted once; anything at or below
/// `highest - 1024`, or seen before, is refused. One bit per seq in the window.
public struct ReplayWindow: Sendable, Equatable {
    public static let size: UInt64 = SealedEnvelope.replayWindow
    private static let wordCount = Int(size / 64)

    /// The highest accepted seq, 0 before any.
    public private(set) var highest: UInt64 = 0
    /// Bit `i` of the window is seq `highest - i`; word 0 holds i = 0...63.
    public private(set) var bits: [UInt64] = Array(repeating: 0, count: wordCount)

    public init() {}

    /// Restores a window (for stores that persist it).
    public init(highest: UInt64, bits: [UInt64]) {
        self.highest = highest
        self.bits = bits.count == Self.wordCount ? bits : Array(repeating: 0, count: Self.wordCount)
    }

    /// Whether `seq` would be accepted, without recording it.
    public func isFresh(_ seq: UInt64) -> Bool {
        guard seq > 0 else { return false }
        if seq > highest { return true }
        let offset = highest - seq
        guard offset < Self.size else { return false }
        return !isSet(Int(offset))
    }

    /// Records `seq` if fresh; returns whether it was.
    public mutating func accept(_ seq: UInt64) -> Bool {
        guard isFresh(seq) else { return false }
        if seq > highest {
            shift(by: seq - highest)
            highest = seq
            set(0)
        } else {
            set(Int(highest - seq))
        }
        return true
    }

    private func isSet(_ offset: Int) -> Bool {
        bits[offset / 64] & (1 << UInt64(offset % 64)) != 0
    }

    private mutating func set(_ offset: Int) {
        bits[offset / 64] |= 1 << UInt64(offset % 64)
    }

    /// Moves every bit `count` places towards older seqs.
    private mutating func shift(by count: UInt64) {
        guard count < Self.size else {
            for index in bits.indices { bits[index] = 0 }
            return
        }
        let wordShift = Int(count / 64)
        let bitShift = UInt64(count % 64)
        for index in stride(from: Self.wordCount - 1, through: 0, by: -1) {
            let source = index - wordShift
            var word: UInt64 = 0
            if source >= 0 {
                word = bits[source] << bitShift
                if bitShift > 0, source - 1 >= 0 { word |= bits[source - 1] >> (64 - bitShift) }
            }
            bits[index] = word
        }
    }
}
