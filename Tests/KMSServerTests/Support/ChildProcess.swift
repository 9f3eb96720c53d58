import Foundation

#if !os(Linux)
    /// Foundation's `Process` finds descriptors another way outside Linux.
    typealias ChildProcess = Process
#else
    import Glibc
    import Synchronization

    /// A child process started with `posix_spawn`, for the tests' use in place of Foundation's `Process`,
    /// with the part of its interface they use.
    ///
    /// Why not `Process`: on Linux its `run()` (swift-corelibs-foundation up to 6.3 at least) finds the
    /// highest open descriptor by copying each `/proc/self/fd` entry's whole 256-byte `d_name`, which
    /// reads past `readdir`'s buffer for the entries near the end of a full batch: from about 1,354 open
    /// descriptors, every `run()` over-reads up to 235 bytes and crashes when that buffer ends a heap
    /// (`memcpy`, SIGSEGV; upstream fix 81eb85a2, not in a release yet). This suite's servers hold over a
    /// thousand descriptors at its peak, and two full runs crashed so. Here the child closes every
    /// descriptor from 3 up with `posix_spawn_file_actions_addclosefrom_np`, reading nothing.
    final class ChildProcess: @unchecked Sendable {
        enum TerminationReason { case exit, uncaughtSignal }

        var executableURL: URL?
        var arguments: [String] = []
        /// nil: this process's environment.
        var environment: [String: String]?
        var currentDirectoryURL: URL?
        /// A `Pipe` (the child gets its end, the parent's copy of that end is closed once started), a
        /// `FileHandle` (`FileHandle.nullDevice` is /dev/null), or nil (inherited).
        var standardInput: Any?
        var standardOutput: Any?
        var standardError: Any?

        private struct State {
            var pid: pid_t = 0
            /// The raw wait status, once reaped.
            var status: Int32?
        }
        private let state = Mutex(State())

        var processIdentifier: pid_t { state.withLock { $0.pid } }

        func run() throws {
            precondition(processIdentifier == 0, "ChildProcess started twice")
            guard let path = executableURL?.path else { throw CLIFailure("ChildProcess: no executable") }
            var actions = posix_spawn_file_actions_t()
            guard posix_spawn_file_actions_init(&actions) == 0 else {
                throw CLIFailure("posix_spawn_file_actions_init")
            }
            defer { posix_spawn_file_actions_destroy(&actions) }
            var nullDevice: FileHandle?
            func descriptor(_ stream: Any?, child: Int32) throws -> Int32? {
                switch stream {
                case let pipe as Pipe:
                    return child == STDIN_FILENO
                        ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor
                case let handle as FileHandle where handle === FileHandle.nullDevice:
                    if nullDevice == nil {
                        guard let opened = FileHandle(forUpdatingAtPath: "/dev/null") else {
                            throw CLIFailure("ChildProcess: cannot open /dev/null")
                        }
                        nullDevice = opened
                    }
                    return nullDevice?.fileDescriptor
                case let handle as FileHandle:
                    return handle.fileDescriptor
                default:
                    return nil
                }
            }
            let streams = [
                (standardInput, STDIN_FILENO), (standardOutput, STDOUT_FILENO), (standardError, STDERR_FILENO),
            ]
            for (stream, child) in streams {
                if let fd = try descriptor(stream, child: child) {
                    guard posix_spawn_file_actions_adddup2(&actions, fd, child) == 0 else {
                        throw CLIFailure("posix_spawn_file_actions_adddup2")
                    }
                }
            }
            guard Self.addCloseFrom(&actions, 3) == 0 else {
                throw CLIFailure("posix_spawn_file_actions_addclosefrom_np")
            }
            if let folder = currentDirectoryURL?.path {
                guard Self.addChdir(&actions, folder) == 0 else {
                    throw CLIFailure("posix_spawn_file_actions_addchdir_np")
                }
            }
            // As Process does: the child leads a process group of its own, and keeps the signal mask and the
            // ignored signals of the thread that starts it (the tests that need a signal ignored use `trap`).
            var attributes = posix_spawnattr_t()
            guard posix_spawnattr_init(&attributes) == 0 else { throw CLIFailure("posix_spawnattr_init") }
            defer { posix_spawnattr_destroy(&attributes) }
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))

            let argv = ([path] + arguments).map { strdup($0) } + [nil]
            let envText = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
            let envp = envText.map { strdup($0) } + [nil]
            defer {
                for pointer in argv + envp { free(pointer) }
            }
            var pid = pid_t()
            let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
            try? nullDevice?.close()
            guard result == 0 else { throw CLIFailure("posix_spawn \(path): \(String(cString: strerror(result)))") }
            state.withLock { $0.pid = pid }
            // The parent's copies of the child's ends, so that reading the other end sees the child's end of file.
            if let pipe = standardInput as? Pipe { try? pipe.fileHandleForReading.close() }
            if let pipe = standardOutput as? Pipe { try? pipe.fileHandleForWriting.close() }
            if let pipe = standardError as? Pipe { try? pipe.fileHandleForWriting.close() }
        }

        /// Reaps the child if it has ended; `block`: waits for it.
        private func reap(block: Bool) {
            let pid = processIdentifier
            guard pid > 0 else { return }
            var waitedForOther = 0
            while state.withLock({ $0.status == nil }) {
                var status: Int32 = 0
                let reaped = waitpid(pid, &status, block ? 0 : WNOHANG)
                if reaped == pid {
                    state.withLock { $0.status = status }
                    return
                }
                if reaped == 0 { return }  // still running (WNOHANG)
                if errno == EINTR { continue }
                // ECHILD: another thread reaped it and is storing its status; a second at most (nothing else
                // in this process waits for any child, but a hang would hide the test that caused it).
                if !block { return }
                waitedForOther += 1
                if waitedForOther > 1_000 {
                    state.withLock { $0.status = $0.status ?? 0xFF00 }
                    return
                }
                usleep(1_000)
            }
        }

        var isRunning: Bool {
            guard processIdentifier > 0 else { return false }
            reap(block: false)
            return state.withLock { $0.status == nil }
        }

        func waitUntilExit() { reap(block: true) }

        func terminate() {
            if isRunning { kill(processIdentifier, SIGTERM) }
        }

        private var rawStatus: Int32 {
            guard let status = state.withLock({ $0.status }) else { preconditionFailure("ChildProcess has not ended") }
            return status
        }

        /// The exit status, or the number of the signal that ended it.
        var terminationStatus: Int32 {
            let status = rawStatus
            return status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
        }

        var terminationReason: TerminationReason { rawStatus & 0x7F == 0 ? .exit : .uncaughtSignal }

        deinit {
            // Not left a zombie: a child never waited for is reaped when it ends.
            let pid = state.withLock { $0.status == nil ? $0.pid : 0 }
            if pid > 0 {
                Thread.detachNewThread {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) == -1, errno == EINTR {}
                }
            }
        }

        // glibc has both since 2.34 and 2.29, behind _GNU_SOURCE, which Swift's Glibc module does not define.
        private typealias AddCloseFrom =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        private typealias AddChdir =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>)
            -> Int32

        private static let addCloseFrom: AddCloseFrom = symbol("posix_spawn_file_actions_addclosefrom_np")
        private static let addChdir: AddChdir = symbol("posix_spawn_file_actions_addchdir_np")

        private static func symbol<T>(_ name: String) -> T {
            guard let found = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
                preconditionFailure("\(name) is not in this C library (glibc 2.34 or later is needed)")
            }
            return unsafeBitCast(found, to: T.self)
        }
    }
#endif
