import Foundation
import Testing

@testable import KMSCore

@Suite struct PendingQueueTests {
    /// init → failed exchange in a loop, while one pending session stays
    /// live: the queue of pending ids stays bounded.
    @Test func takenPendingSessionsDoNotAccumulate() async throws {
        let store = InMemorySessionStore()
        let now = Date()
        let later = now.addingTimeInterval(60)
        try await store.addPending(
            PendingSession(id: "long", clientAddress: "a", expiresAt: later), now: now, perAddress: 64, max: 100)
        for index in 0..<5_000 {
            try await store.addPending(
                PendingSession(id: "p\(index)", clientAddress: "b", expiresAt: later), now: now, perAddress: 64,
                max: 100)
            _ = try await store.takePending(id: "p\(index)", now: now)
        }
        #expect(store.pendingQueueLength <= 2 * 1 + 64 + 1)
    }
}
