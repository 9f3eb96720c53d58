import CProcessHardening

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps this process's memory out of core dumps.
///
/// The server holds the master key, the identity key, session keys and
/// plaintexts in memory, and the CLI holds a client key and data keys. A
/// crash that wrote a core file (or handed one to `systemd-coredump`) would
/// put them on disk unwrapped, against the rule that no secret reaches a
/// file; Vault's production hardening asks for the same. A core size limit
/// of zero stops the file (and `systemd-coredump` honours it); on Linux,
/// marking the process not dumpable also stops a core piped to any handler
/// and refuses `ptrace`, `/proc/PID/mem`, `maps` and `fd` to other processes
/// of the same user (so `perf -p`, `lsof` and Swift's out-of-process crash
/// backtracer need root there; `/proc/PID/stat`, `status` and `limits`, which
/// `kms bench --server-pid` reads, stay readable). The only program `kms`
/// starts is itself (`kms bench --store-scaling` runs `kms serve`), which
/// sets both again; `execve` resets the flag and keeps the zero limit.
enum CoreDumps {
    /// Turns core dumps off for this process. Returns false if the system
    /// refused a step; on Linux it does not: lowering one's own limit and
    /// clearing one's own dumpable flag are always allowed.
    @discardableResult
    static func disable() -> Bool {
        var limit = rlimit(rlim_cur: 0, rlim_max: 0)
        #if canImport(Glibc)
            let limited = setrlimit(Int32(RLIMIT_CORE.rawValue), &limit) == 0
            return limited && kms_set_not_dumpable() == 0
        #elseif canImport(Musl)
            let limited = setrlimit(RLIMIT_CORE, &limit) == 0
            return limited && kms_set_not_dumpable() == 0
        #else
            return setrlimit(RLIMIT_CORE, &limit) == 0
        #endif
    }
}
