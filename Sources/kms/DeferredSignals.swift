import ArgumentParser
import CProcessHardening
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The signals that would end `kms restore` (Ctrl-C, SIGTERM, SIGHUP for a closed terminal), held
/// while it runs so that it stops only where the store is whole. Before the restore moves its first
/// file into place it asks `stopRequested` and, on a signal, removes its staging folder and stops with
/// the store as it was; once files move it finishes, since a kill there leaves the store part old,
/// part restored (a probe: a SIGTERM in a small restore's first fraction of a second left its staging
/// folder and an empty set-aside folder, and the next restore asked for the folder to be emptied).
/// A signal ignored when the process started (`nohup`) stays ignored, as `InterruptCleanup` keeps it.
final class DeferredSignals: @unchecked Sendable {
    static let signals = [SIGINT, SIGTERM, SIGHUP]
    /// The first signal received, 0 while none was; written on dispatch's queue, read by the restore.
    private final class Received: Sendable {
        let number = Atomic<Int32>(0)
    }
    private let received = Received()
    private let sources: [any DispatchSourceSignal]
    private let handled: [Int32]

    init() {
        let handled = Self.signals.filter { kms_signal_ignored($0) == 0 }
        let received = received
        sources = handled.map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                _ = received.number.compareExchange(expected: 0, desired: signalNumber, ordering: .relaxed)
            }
            source.resume()
            return source
        }
        self.handled = handled
    }

    /// The signal that asked the restore to stop, if one has.
    var signalNumber: Int32? {
        let number = received.number.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// Ends the process as the signal would have, once `error` (what the restore left), if any, is said: by the
    /// signal's default action, so that a shell running `kms restore` in a script sees the signal and a
    /// Ctrl-C stops the script too, where an exit with 128 + N read as the command's own status (a
    /// review). 128 + N should the signal not end it.
    func end(by number: Int32, reporting error: (any Error)? = nil) -> Never {
        if let error { reportFailure(CLIFailure(message: "\(error)", status: ExitCode(128 + number))) }
        finishStandardOutput()
        cancel()
        kms_end_by_signal(number)
        exit(128 + number)
    }

    /// Gives each signal back its default action.
    func cancel() {
        for source in sources { source.cancel() }
        for signalNumber in handled { signal(signalNumber, SIG_DFL) }
    }
}
