import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Fits the connection caps to the process's open-file limit.
///
/// Every connection is a descriptor, and each door counts its own
/// `KMS_MAX_CONNECTIONS`. Under systemd's default soft limit of 1,024 two
/// doors at the default cap of 1,000 could be asked for 2,000 sockets: a
/// probe (2026-12-04) filled the table, after which `accept` failed with
/// `EMFILE` in a loop that spun a core, neither door took a new connection
/// (not even `/healthz`), and key writes failed for want of a descriptor.
/// The cap is only a defence if it is reached first. So `kms serve` raises
/// its soft limit toward the hard one (as Go's runtime does), and if the
/// caps still do not fit beside a reserve for everything else, it lowers
/// them and says so, or refuses to start when too few would be left for the
/// per-address shares to mean anything.
public enum OpenFileLimit {
    /// Descriptors kept for everything but connections: three per event loop
    /// (epoll, eventfd, timerfd), the listeners, standard streams, the store's
    /// and the audit log's files, the PostgreSQL pool (16) and its listener,
    /// and connections accepted only to be closed; with room to spare.
    public static var reserve: Int { max(256, 128 + 4 * System.coreCount) }
    /// The highest soft limit asked for: Linux's default `nr_open`.
    static let ceiling: UInt64 = 1 << 20
    /// Below this cap a door's shares (a quarter per address, a tenth for
    /// strangers) leave one host able to hold it whole: the server would be
    /// up but unreachable, so it refuses to start instead.
    public static let smallestCap = 40

    /// The soft limit to ask for: `soft` raised toward `hard`, at most `ceiling`.
    public static func target(soft: UInt64, hard: UInt64) -> UInt64 {
        max(soft, min(hard, ceiling))
    }

    /// The largest cap per door that keeps every door's connections and the reserve under `limit`.
    public static func cap(limit: UInt64, doors: Int, maxConnections: Int) -> Int {
        let room = limit > UInt64(reserve) ? Int(min(limit - UInt64(reserve), UInt64(Int.max))) : 0
        return min(maxConnections, max(1, room / max(1, doors)))
    }

    /// The highest soft limit from `target` down to `soft` that `set` accepts,
    /// halving after each refusal: macOS refuses more than
    /// `kern.maxfilesperproc` under an unlimited hard limit, and Linux more
    /// than `fs.nr_open`.
    public static func raise(from soft: UInt64, to target: UInt64, trying set: (UInt64) -> Bool) -> UInt64 {
        var asked = target
        while asked > soft {
            if set(asked) { return asked }
            asked /= 2
        }
        return soft
    }

    /// Raises this process's soft limit and lowers `config.maxConnections`
    /// when it still does not fit, with a warning that names what to raise.
    /// Returns a reason to refuse the start when the cap left would be below
    /// `smallestCap` (and below the configured one).
    public static func apply(to config: inout KMSConfiguration, logger: Logger) -> String? {
        let doors = config.aws == nil ? 1 : 2
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0 else { return nil }
        let target = target(soft: UInt64(limits.rlim_cur), hard: UInt64(limits.rlim_max))
        let soft = raise(from: UInt64(limits.rlim_cur), to: target) { asked in
            var raised = limits
            raised.rlim_cur = rlim_t(asked)
            return setrlimit(resource, &raised) == 0
        }
        let fitted = cap(limit: soft, doors: doors, maxConnections: config.maxConnections)
        guard fitted < config.maxConnections else { return nil }
        let doorsText = "\(doors) door\(doors == 1 ? "" : "s")"
        if fitted < smallestCap {
            return """
                KMS_MAX_CONNECTIONS=\(config.maxConnections) per door does not fit this process's open-file \
                limit of \(soft) (\(doorsText) and \(reserve) kept for files): it would leave \(fitted) \
                connection\(fitted == 1 ? "" : "s") a door, which one host could hold; raise the limit \
                (LimitNOFILE= in the systemd unit, ulimit -n) or lower KMS_MAX_CONNECTIONS
                """
        }
        logger.warning(
            """
            KMS_MAX_CONNECTIONS=\(config.maxConnections) per door does not fit this process's open-file \
            limit of \(soft) (\(doorsText) and \(reserve) kept for files): each door takes at most \(fitted) \
            connections; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) to keep the setting
            """)
        config.maxConnections = fitted
        return nil
    }

    #if canImport(Glibc)
        private static var resource: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
    #else
        private static var resource: Int32 { RLIMIT_NOFILE }
    #endif
}
