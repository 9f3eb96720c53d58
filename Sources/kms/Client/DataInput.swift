import ArgumentParser
import Foundation
import KMSProtocol

/// Input bytes from an argument, a file, or standard input.
struct DataInput: ParsableArguments {
    @Argument(help: "The input as text; omit to read --file or standard input.")
    var text: String?

    @Option(name: .long, help: "Read the input from this file ('-' for standard input).")
    var file: String?

    @Flag(name: .long, help: "The input is base64 (decoded before use).")
    var base64 = false

    /// The input as text without surrounding whitespace (ciphertexts).
    func readText() throws -> String {
        String(decoding: try read(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func read() throws -> Data {
        let data: Data
        if let text {
            data = Data(text.utf8)
        } else if let file, file != "-" {
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            data = contents
        } else {
            data = FileHandle.standardInput.readDataToEndOfFile()
        }
        guard base64 else { return data }
        let trimmed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let decoded = Base64.decodeStrict(trimmed) else {
            throw ValidationError("--base64 was given but the input is not standard padded base64")
        }
        return decoded
    }
}

/// `--aad` as text or `--aad-base64`.
struct AADOptions: ParsableArguments {
    @Option(name: .long, help: "Additional authenticated data, as text (must be given again to decrypt).")
    var aad: String?

    @Option(name: .customLong("aad-base64"), help: "Additional authenticated data, as base64.")
    var aadBase64: String?

    func read() throws -> Data? {
        if let aadBase64 {
            guard let data = Base64.decodeStrict(aadBase64) else { throw ValidationError("--aad-base64 is not base64") }
            return data
        }
        return aad.map { Data($0.utf8) }
    }
}
