import Foundation
import KMSCore
import Testing

/// Issue 17: the per-address key-exchange limit, without HTTP.
@Suite struct KeyExchangeLimiterTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func refused(_ limiter: KeyExchangeLimiter, _ address: String, at seconds: Double, contended: Bool) -> Bool {
        do {
            try limiter.admit(address, now: start.addingTimeInterval(seconds), contended: contended)
            return false
        } catch {
            #expect(error.code == .rateLimited && (error.retryAfterSeconds ?? 0) >= 1)
            return true
        }
    }

    @Test func anEmptyBucketRefusesOnlyUnderContention() {
        let limiter = KeyExchangeLimiter(perSecond: 5)  // bursts of 10
        for _ in 0..<10 { #expect(!refused(limiter, "a", at: 0, contended: true)) }
        #expect(refused(limiter, "a", at: 0, contended: true))
        // Alone on an idle server the same address is never refused, however fast.
        for _ in 0..<100 { #expect(!refused(limiter, "a", at: 0, contended: false)) }
        // Another address has its own bucket; the drained one refills at the rate.
        #expect(!refused(limiter, "b", at: 0, contended: true))
        #expect(refused(limiter, "a", at: 0.1, contended: true))
        #expect(!refused(limiter, "a", at: 0.3, contended: true))
    }

    @Test func manyAddressesDoNotWipeAFloodersBucket() {
        let limiter = KeyExchangeLimiter(perSecond: 1)  // bursts of 2
        #expect(!refused(limiter, "flooder", at: 0, contended: true))
        #expect(!refused(limiter, "flooder", at: 0, contended: true))
        #expect(refused(limiter, "flooder", at: 0, contended: true))
        for index in 0..<KeyExchangeLimiter.maxAddresses {
            _ = refused(limiter, "10.0.\(index / 256).\(index % 256)", at: 0.5, contended: false)
        }
        // The table is full of recent addresses: the flooder is still remembered as empty,
        // and a newcomer that cannot be remembered is judged on an empty bucket.
        #expect(refused(limiter, "flooder", at: 0.5, contended: true))
        #expect(refused(limiter, "newcomer", at: 0.5, contended: true))
        #expect(!refused(limiter, "newcomer", at: 0.5, contended: false))
        // Once the others are idle (refilled), they are forgotten and newcomers are remembered again.
        #expect(!refused(limiter, "newcomer", at: 10, contended: true))
    }
}
