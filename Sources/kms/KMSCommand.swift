import ArgumentParser

/// `kms`: the server and its command-line client in one binary (run by `Entry`).
struct KMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kms",
        abstract: "A self-hosted key management service for personal cloud storage.",
        subcommands: [
            ServeCommand.self, E2ECommand.self, KeysCommand.self, AliasesCommand.self, BackupCommand.self,
            RestoreCommand.self, TLSCertCommand.self, DoctorCommand.self, EncryptCommand.self,
            DecryptCommand.self,
            RewrapCommand.self, DataKeyCommand.self, RandomCommand.self, ServerKeyCommand.self, AuditCommand.self,
            EncryptFileCommand.self, DecryptFileCommand.self, RewrapFileCommand.self, InspectFileCommand.self,
            BenchCommand.self, MigrateCommand.self, ClientKeyCommand.self, ClientsCommand.self, WhoamiCommand.self,
            KnownServersCommand.self,
        ]
    )
}
