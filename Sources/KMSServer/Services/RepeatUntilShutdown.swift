import ServiceLifecycle

/// Runs `tick` every `interval` until graceful shutdown (or cancellation) ends the wait: the loop of the
/// background jobs that only sweep or report (`SessionJanitor`, `LeftOutLogLines`). The shutdown's
/// cancellation reaches a tick under way too (a sweep may then end with its failure's warning); none starts
/// after it.
func repeatUntilShutdown(every interval: Duration, _ tick: @escaping @Sendable () async -> Void) async {
    await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            await tick()
        }
    }
}
