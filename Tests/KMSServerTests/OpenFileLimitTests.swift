import KMSServer
import Logging
import Testing

/// The connection caps must be reached before the open-file limit: past it,
/// `accept` fails in a loop that spins a core and no door takes a connection.
@Suite struct OpenFileLimitTests {
    @Test func theSoftLimitIsRaisedToTheHardOneAndTheCapKept() {
        let plan = OpenFileLimit.plan(soft: 1_024, hard: 524_288, doors: 2, maxConnections: 1_000)
        #expect(plan.softLimit == 524_288 && plan.maxConnections == 1_000)
        // An unlimited hard limit is not asked for whole (Linux refuses more than nr_open).
        #expect(OpenFileLimit.plan(soft: 1_024, hard: .max, doors: 1, maxConnections: 1_000).softLimit == 1 << 20)
        // A soft limit already higher is left alone.
        #expect(OpenFileLimit.plan(soft: 4_096, hard: 2_048, doors: 1, maxConnections: 10).softLimit == 4_096)
    }

    @Test func capsThatDoNotFitTheHardLimitAreLowered() {
        // Two doors at the default cap under a hard limit of 1,024: 384 each beside the reserve.
        let two = OpenFileLimit.plan(soft: 1_024, hard: 1_024, doors: 2, maxConnections: 1_000)
        #expect(two.maxConnections == (1_024 - OpenFileLimit.reserve) / 2)
        #expect(2 * two.maxConnections + OpenFileLimit.reserve <= 1_024)
        #expect(OpenFileLimit.plan(soft: 1_024, hard: 1_024, doors: 1, maxConnections: 1_000).maxConnections == 768)
        // Never below one, even under a limit smaller than the reserve.
        #expect(OpenFileLimit.plan(soft: 100, hard: 100, doors: 2, maxConnections: 1_000).maxConnections == 1)
    }

    @Test func applyingKeepsAFittingCapAndNeverLowersTheLimit() throws {
        var config = try KMSConfiguration(environment: ["KMS_MAX_CONNECTIONS": "20"])
        OpenFileLimit.apply(to: &config, logger: Logger(label: "test"))
        #expect(config.maxConnections == 20)
    }
}
