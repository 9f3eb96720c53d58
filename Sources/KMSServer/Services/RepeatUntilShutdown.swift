import ServiceLifecycle

/// Runs `tick` every `interval` until graceful shutdown (or cancellation) ends the wait: the loop of the
/// background jobs that only sweep or report (`SessionJanitor`, `LeftOutLogLines`). A tick under way
/// finishes; none starts after the shutdown.
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
