import Foundation
import KMSCore
import Logging
import Testing

/// A review finding: the master key file was read from anything at its path (a named pipe held
/// start-up, a device was read without end) and used when every user of the machine could read it.
@Suite struct MasterKeyFileTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-master-\(UUID().uuidString)")
    var file: URL { folder.appendingPathComponent("master.key") }

    func write(mode: Int16) throws {
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try Data((Data(repeating: 5, count: 32).base64EncodedString() + "\n").utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
    }

    func refusal() -> String? {
        do {
            _ = try MasterKeyLoader.load(base64: nil, file: file, logger: Logger(label: "test"))
            return nil
        } catch {
            return error.description
        }
    }

    @Test func aFileOpenToEveryUserIsRefused() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        for mode: Int16 in [0o644, 0o602, 0o604] {
            try write(mode: mode)
            let refused = refusal()
            #expect(refused?.contains("open to every user") == true, "\(String(mode, radix: 8)): \(refused ?? "nil")")
        }
        // Its group may be meant to read it (a credential folder, a container): a warning only.
        try write(mode: 0o640)
        #expect(refusal() == nil)
        try write(mode: 0o600)
        #expect(refusal() == nil)
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
