import KMSCore
import Testing

@Suite struct ReplayWindowTests {
    @Test func acceptsEachSeqOnceInAnyOrderInsideTheWindow() {
        var window = ReplayWindow()
        #expect(!take(&window, 0))
        #expect(take(&window, 5))
        #expect(take(&window, 3))
        #expect(!take(&window, 3))
        #expect(!take(&window, 5))
        #expect(take(&window, 4))
        #expect(take(&window, 1))
        #expect(window.highest == 5)
    }

    @Test func boundaryIsExactly1024() {
        var window = ReplayWindow()
        #expect(take(&window, 2000))
        #expect(take(&window, 2000 - 1023))
        #expect(!take(&window, 2000 - 1024))
        #expect(!take(&window, 1))
    }

    @Test func shiftsKeepSeenBitsAcrossWords() {
        var window = ReplayWindow()
        for seq in stride(from: UInt64(1), through: 300, by: 3) { #expect(take(&window, seq)) }
        #expect(take(&window, 370))
        for seq in stride(from: UInt64(1), through: 300, by: 3) { #expect(!take(&window, seq), "\(seq)") }
        for seq in stride(from: UInt64(2), through: 300, by: 3) { #expect(take(&window, seq), "\(seq)") }
        #expect(take(&window, 370 + 5000))
        #expect(!take(&window, 370))
        #expect(take(&window, 370 + 5000 - 1023))
    }

    /// The window against a reference model on a pseudo-random walk.
    @Test func matchesAReferenceModel() {
        var window = ReplayWindow()
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let jump = Int64(state >> 53) - 600
            let seq = UInt64(max(1, Int64(highest) + jump))
            let expected = !seen.contains(seq) && (seq > highest || highest - seq < 1024)
            #expect(take(&window, seq) == expected)
            if expected {
                seen.insert(seq)
                highest = max(highest, seq)
            }
        }
    }
}

/// `#expect` cannot call a mutating method; this takes the window inout.
private func take(_ window: inout ReplayWindow, _ seq: UInt64) -> Bool {
    window.accept(seq)
}
