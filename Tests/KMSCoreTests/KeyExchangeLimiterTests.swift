import Foundation
import Testing

@testable import KMSCore

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
        // A review finding: every newcomer at a full table swept all 10,000 addresses under the lock.
        // The sweep that found none idle says when the first can be (the flooder's bucket, last
        // refilled at 0: at 2 s); until then a newcomer costs no sweep.
        let swept = limiter.sweeps
        for index in 0..<1_000 { _ = refused(limiter, "new-\(index)", at: 1.9, contended: true) }
        #expect(limiter.sweeps == swept)
        // At 2.1 s one sweep runs; every address was seen at 0.5 s, so none is idle yet.
        #expect(refused(limiter, "another", at: 2.1, contended: true))
        #expect(limiter.sweeps == swept + 1)
        // Once the others are idle (refilled), they are forgotten and newcomers are remembered again.
        #expect(!refused(limiter, "newcomer", at: 10, contended: true))
    }
}
