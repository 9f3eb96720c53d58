import KMSServer
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The connection caps must be reached before the open-file limit: past it,
/// `accept` fails in a loop that spins a core and no door takes a connection.
@Suite struct OpenFileLimitTests {
    @Test func theSoftLimitIsRaisedToTheHardOneAndTheCapKept() {
        #expect(OpenFileLimit.target(soft: 1_024, hard: 524_288) == 524_288)
        #expect(OpenFileLimit.cap(limit: 524_288, doors: 2, maxConnections: 1_000) == 1_000)
        // An unlimited hard limit is not asked for whole (Linux refuses more than nr_open).
        #expect(OpenFileLimit.target(soft: 1_024, hard: .max) == 1 << 20)
        // A soft limit already higher is left alone.
        #expect(OpenFileLimit.target(soft: 4_096, hard: 2_048) == 4_096)
    }

    @Test func capsThatDoNotFitTheHardLimitAreLowered() {
        let reserve = OpenFileLimit.reserve
        // Two doors at the default cap under a hard limit of 1,024: what is left beside the reserve, halved.
        #expect(OpenFileLimit.cap(limit: 1_024, doors: 2, maxConnections: 1_000) == (1_024 - reserve) / 2)
        #expect(OpenFileLimit.cap(limit: 1_024, doors: 1, maxConnections: 1_000) == 1_024 - reserve)
        // Never below one, even under a limit smaller than the reserve (apply then refuses the start).
        #expect(OpenFileLimit.cap(limit: 100, doors: 2, maxConnections: 1_000) == 1)
    }

    /// macOS refuses a soft limit past kern.maxfilesperproc under an unlimited hard one: the
    /// first try failing must not leave the old limit (256 there, one connection a door).
    @Test func aRefusedRaiseTriesLowerValues() {
        var asked: [UInt64] = []
        let got = OpenFileLimit.raise(from: 256, to: 1 << 20) { value in
            asked.append(value)
            return value <= 10_240
        }
        #expect(got == 8_192 && asked.first == 1 << 20)
        #expect(OpenFileLimit.raise(from: 256, to: 1 << 20) { _ in false } == 256)
        #expect(
            OpenFileLimit.raise(from: 4_096, to: 4_096) { _ in
                Issue.record("nothing to raise"); return true
            } == 4_096)
    }

    @Test func applyingRaisesTheLimitAndKeepsAFittingCap() throws {
        var before = rlimit()
        #expect(getrlimit(Self.resource, &before) == 0)
        var config = try KMSConfiguration(environment: ["KMS_MAX_CONNECTIONS": "20"])
        #expect(OpenFileLimit.apply(to: &config, logger: Logger(label: "test")) == nil)
        #expect(config.maxConnections == 20)
        var after = rlimit()
        #expect(getrlimit(Self.resource, &after) == 0)
        #expect(after.rlim_cur >= before.rlim_cur && after.rlim_max == before.rlim_max)
    }

    #if canImport(Glibc)
        static var resource: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
    #else
        static var resource: Int32 { RLIMIT_NOFILE }
    #endif
}
