import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// systemd's readiness protocol (`Type=notify`, deploy/kms.service): one
/// datagram per state on the socket named by `NOTIFY_SOCKET` (a path, or
/// `@name` for the abstract namespace). Without the variable it does nothing.
struct SystemdNotifier: Sendable {
    let path: String?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Sends `state` (`READY=1`, `STOPPING=1`, …); best effort, never blocks.
    func notify(_ state: String) {
        guard let path else { return }
        #if os(Linux)
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { raw in sendto(fd, raw.baseAddress, raw.count, 0, socketAddress, length) }
            }
        }
    }
}

/// `READY=1` once every listener accepts (the native one, and the AWS door
/// when configured): each listener reports here from its `onServerRunning`.
/// It also logs that the server is ready, after both listeners are up (aws-kms-v1 rule 10.5).
final class ReadinessGate: Sendable {
    private let remaining: Mutex<Int>
    private let notifier: SystemdNotifier
    private let logger: Logger

    init(listeners: Int, notifier: SystemdNotifier, logger: Logger) {
        remaining = Mutex(listeners)
        self.notifier = notifier
        self.logger = logger
    }

    func listening() {
        let ready = remaining.withLock { count -> Bool in
            count -= 1
            return count == 0
        }
        guard ready else { return }
        logger.notice("kms serve is ready: every listener accepts")
        notifier.notify("READY=1\nSTATUS=serving")
    }
}

/// Sends `STOPPING=1` when graceful shutdown begins (SIGTERM), before the
/// drain (`ServeGroup` places it so that shutdown reaches it first), and
/// notes when that was, so that a drain cut short by its bound can be said.
struct SystemdStoppingService: Service {
    let notifier: SystemdNotifier
    /// When graceful shutdown reached this service.
    let began = DrainStart()

    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled without a graceful shutdown: nothing to announce
        }
        began.mark()
        notifier.notify("STOPPING=1")
    }
}
