/// Parks the current task until it is woken (`true`) or cancelled (`false`).
///
/// `park` runs once with the continuation and keeps it (returning `true`)
/// or declines (`false`: the task does not wait). It must check
/// `Task.isCancelled` under the same lock that `unpark` takes, so that a
/// cancellation arriving between the two is never missed: `unpark` removes
/// the continuation if it is still kept, and this resumes it with `false`.
/// Whoever else takes it from the store resumes it with `true`.
func waitCancellably(
    park: (CheckedContinuation<Bool, Never>) -> Bool,
    unpark: @Sendable () -> CheckedContinuation<Bool, Never>?
) async -> Bool {
    await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            if !park(continuation) { continuation.resume(returning: !Task.isCancelled) }
        }
    } onCancel: {
        unpark()?.resume(returning: false)
    }
}
