import ArgumentParser
import Foundation
import KMSCore
import KMSServer
import Logging

extension KMSConfiguration {
    /// The server's configuration as the offline verbs read it (audit,
    /// backup, restore, doctor, migrate, …): a variable that does not parse
    /// is a usage error (64) naming it, as for any other command-line
    /// mistake, never a verdict such as `audit verify`'s 1.
    static func forCommand() throws -> KMSConfiguration {
        do {
            return try fromProcessEnvironment()
        } catch {
            throw ValidationError("configuration error: \(error)")
        }
    }

    /// The master key of a store `kms serve` has run on, never a new one. An
    /// offline verb run in the wrong folder made a master key and an empty
    /// store there (`clients add --local` reported an enrolment the real
    /// server never saw: a review finding); it is refused instead, naming the path.
    func existingMasterKey(logger: Logger) throws -> MasterKey {
        if masterKeyBase64 == nil, !FileManager.default.fileExists(atPath: masterKeyFile.path),
            !DurableFile.isUnreachable(masterKeyFile)
        {
            throw ValidationError(
                "no master key at \(masterKeyFile.path) (KMS_MASTER_KEY_FILE): run this where `kms serve` runs, "
                    + "with its configuration (a store opens only with the master key it was made under)"
            )
        }
        return try MasterKeyLoader.load(
            base64: masterKeyBase64, file: masterKeyFile, logger: logger, tidy: false, create: false)
    }
}
