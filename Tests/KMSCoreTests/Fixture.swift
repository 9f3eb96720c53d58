import Foundation
import KMSProtocol

/// Test data shipped in Fixtures/ (copied into the repository; tests read nothing outside it).
enum Fixture {
    static func data(_ name: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }

    static func json(_ name: String) throws -> [String: Any] {
        (try JSONSerialization.jsonObject(with: data(name)) as? [String: Any]) ?? [:]
    }
}

extension Data {
    init(hex: String) { self.init(Hex.decode(hex) ?? []) }
}
