import ArgumentParser
import KMSServer

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
}
