import Foundation
import KMSCore
import KMSTestSupport
import Logging
import Testing

/// A review finding: the master key file was read from anything at its path (a named pipe held
/// start-up, a device was read without end). A looser mode than 0600 is warned about at start-up, as
/// api-v1 fixes (a refusal stopped deployments that follow the contract).
@Suite struct MasterKeyFileTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-master-\(UUID().uuidString)")
    var file: URL { folder.appendingPathComponent("master.key") }

    func write(mode: Int16) throws {
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? FileManager.default.removeItem(at: file)
        try Data((Data(repeating: 5, count: 32).base64EncodedString() + "\n").utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
    }

    func refusal(logger: Logger = Logger(label: "test")) -> String? {
        do {
            _ = try MasterKeyLoader.load(base64: nil, file: file, logger: logger)
            return nil
        } catch {
            return error.description
        }
    }

    /// The read-only verbs checked that the file exists, then loaded it with the loader that makes one
    /// when missing: a file gone between the two gave a new master key (a review). They load with
    /// `create: false`, which refuses instead.
    @Test func aLoadThatMayNotCreateRefusesAMissingFile() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: StartupFailure.self) {
            _ = try MasterKeyLoader.load(base64: nil, file: file, logger: Logger(label: "test"), create: false)
        }
        #expect(!FileManager.default.fileExists(atPath: folder.path))
        #expect(try MasterKeyLoader.loadExisting(base64: nil, file: file) == nil)
    }

    @Test func aLooserModeIsWarnedAboutAndTheKeyIsUsed() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let everyone =
            "the master key file is open to every user of this machine: run chmod 600 on it, and treat the key as exposed if others could log in here"
        let group =
            "the master key file is open to its group; run chmod 600 on it unless that group is meant to read it"
        for (mode, warning): (Int16, String?) in [
            (0o644, everyone), (0o602, everyone), (0o604, everyone), (0o444, everyone), (0o640, group), (0o600, nil),
        ] {
            try write(mode: mode)
            let counter = LogCounter()
            #expect(refusal(logger: counter.logger) == nil, "\(String(mode, radix: 8))")
            #expect(counter.count(everyone) == (warning == everyone ? 1 : 0), "\(String(mode, radix: 8))")
            #expect(counter.count(group) == (warning == group ? 1 : 0), "\(String(mode, radix: 8))")
        }
    }

    @Test func onlyASmallRegularFileIsRead() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        #expect(mkfifo(file.path, 0o600) == 0)
        let pipe = refusal()
        #expect(pipe?.contains("not a regular file") == true, "\(pipe ?? "nil")")
        try FileManager.default.removeItem(at: file)
        try Data(repeating: 0x41, count: 5000).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        let large = refusal()
        #expect(large?.contains("larger than 4096 bytes") == true, "\(large ?? "nil")")
    }
}
