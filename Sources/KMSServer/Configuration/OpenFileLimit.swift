import Logging

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
/// its soft limit to the hard one (as Go's runtime does), and if the caps
/// still do not fit beside a reserve for the stores, the audit log and the
/// database pool, it lowers them and says so.
public enum OpenFileLimit {
    /// Descriptors kept for everything but connections: listeners, the event
    /// loops' own, store and audit files, the PostgreSQL pool (16), the
    /// RSA threads' wake-ups, with room to spare.
    public static let reserve = 256
    /// The highest soft limit asked for: Linux's default `nr_open`.
    static let ceiling: UInt64 = 1 << 20

    /// What to set: the soft limit and each door's connection cap.
    public struct Plan: Equatable, Sendable {
        public var softLimit: UInt64
        public var maxConnections: Int
    }

    /// The soft limit raised toward `hard`, and the cap that fits it.
    public static func plan(soft: UInt64, hard: UInt64, doors: Int, maxConnections: Int) -> Plan {
        let raised = max(soft, min(hard, ceiling))
        return Plan(softLimit: raised, maxConnections: cap(limit: raised, doors: doors, maxConnections: maxConnections))
    }

    /// The largest cap per door that keeps every door's connections and the reserve under `limit`.
    static func cap(limit: UInt64, doors: Int, maxConnections: Int) -> Int {
        let room = limit > UInt64(reserve) ? Int(min(limit - UInt64(reserve), UInt64(Int.max))) : 0
        return min(maxConnections, max(1, room / max(1, doors)))
    }

    /// Raises this process's soft limit and lowers `config.maxConnections`
    /// when it still does not fit, with a warning that names what to raise.
    public static func apply(to config: inout KMSConfiguration, logger: Logger) {
        let doors = config.aws == nil ? 1 : 2
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0 else { return }
        var plan = plan(
            soft: UInt64(limits.rlim_cur), hard: UInt64(limits.rlim_max), doors: doors,
            maxConnections: config.maxConnections)
        if plan.softLimit > UInt64(limits.rlim_cur) {
            var raised = limits
            raised.rlim_cur = rlim_t(plan.softLimit)
            if setrlimit(resource, &raised) != 0 {
                plan.softLimit = UInt64(limits.rlim_cur)
                plan.maxConnections = cap(
                    limit: plan.softLimit, doors: doors, maxConnections: config.maxConnections)
            }
        }
        guard plan.maxConnections < config.maxConnections else { return }
        logger.warning(
            """
            KMS_MAX_CONNECTIONS=\(config.maxConnections) per door does not fit this process's open-file \
            limit of \(plan.softLimit) (\(doors) door\(doors == 1 ? "" : "s") and \(reserve) kept for files): \
            each door takes at most \(plan.maxConnections) connections; raise the limit (LimitNOFILE= in the \
            systemd unit, ulimit -n) to keep the setting
            """)
        config.maxConnections = plan.maxConnections
    }

    #if canImport(Glibc)
        private static var resource: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
    #else
        private static var resource: Int32 { RLIMIT_NOFILE }
    #endif
}
