import ArgumentParser
import CProcessHardening
import Foundation
import Hummingbird
import KMSCore
import KMSServer
import Logging
import NIOCore

/// `kms serve`: runs the HTTP server until SIGTERM, SIGINT or SIGHUP (unless SIGHUP was ignored at start,
/// as `nohup` does: `runUntilSignalled`).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the KMS server (configured by the environment and an optional .env file).",
        discussion: """
            Every setting comes from the environment, or from KEY=VALUE lines in ./.env (the \
            environment wins). A bad value stops start-up with a message naming the variable.

            ENVIRONMENT
            \(ConfigVariable.helpText)
            """
    )

    func run() async throws {
        var config: KMSConfiguration
        do {
            config = try KMSConfiguration.fromProcessEnvironment()
        } catch {
            writeToStandardError("kms serve: configuration error: \(error)\n")
            throw ExitCode(78)
        }
        let level = config.logLevel
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        var logger = Logger(label: "kms")
        logger.logLevel = level
        // First of all: a start that fails a moment later (a port taken, a database that cannot be reached)
        // must still have said it (a review: a `.env` holding the master key, readable by all, went unsaid).
        for warning in config.dotEnvWarnings { logger.warning("\(warning)") }
        // Before the start-up line, so that it shows the cap in force.
        if let refusal = OpenFileLimit.apply(to: &config, logger: logger) {
            writeToStandardError("kms serve: configuration error: \(refusal)\n")
            throw ExitCode(78)
        }
        logger.notice("starting kms serve", metadata: config.loggable)
        var dependencies = AppDependencies()
        dependencies.logger = logger
        do {
            try await ListenCheck.check(config)
            let app = try await buildApplication(config, dependencies: dependencies)
            try await runUntilSignalled(app, logger: logger, onHangup: kms_signal_ignored(SIGHUP) == 0)
        } catch let error as IOError where [EADDRINUSE, EACCES, EADDRNOTAVAIL].contains(error.errnoCode) {
            // Taken between the check and the bind: the same words, naming both doors when there are two.
            var failure = ListenCheck.failure(
                host: config.host, port: config.port, variables: "KMS_HOST, KMS_PORT", error
            ).description
            if let aws = config.aws {
                failure += " (or the AWS door's \(aws.host):\(aws.port), KMS_AWS_HOST, KMS_AWS_PORT)"
            }
            writeToStandardError("kms serve: \(failure)\n")
            throw ExitCode(1)
        } catch let error as StartupFailure {
            // It may quote a PostgreSQL server's message (a review sent one with terminal controls).
            writeToStandardError("kms serve: \(error.description)\n")
            throw ExitCode(error.isConfiguration ? 78 : 1)
        }
        logger.notice("kms serve stopped")
    }
}
