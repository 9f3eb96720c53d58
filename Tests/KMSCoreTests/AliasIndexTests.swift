import Foundation
import KMSProtocol
import Testing

@testable import KMSCore

/// `AliasIndex` keeps its names in byte order as they change, so a page starts at a binary search (a
/// review: it sorted every name for each page, and a listing for a client that reads few keys walks
/// every page). Its pages must be those of sorting every name, through any sets and removes.
@Suite struct AliasIndexTests {
    func expectedPage(_ sorted: [String], after: String?, limit: Int) -> [String] {
        Array(sorted.filter { name in after.map { $0.bytesPrecede(name) } ?? true }.prefix(limit))
    }

    @Test func pagesAreThoseOfSortingEveryName() {
        var index = AliasIndex()
        var names: [String: String] = [:]
        var generator = SystemRandomNumberGenerator()
        let date = Date(timeIntervalSince1970: 1_800_000_000)
        for step in 0..<3_000 {
            let name = "alias/\(Int.random(in: 0..<400, using: &generator))" + (step % 7 == 0 ? "-Z" : "")
            if Bool.random(using: &generator) || names[name] == nil {
                let keyId = "key_\(Int.random(in: 0..<5, using: &generator))"
                index.set(AliasRecord(alias: name, keyId: keyId, createdAt: date, updatedAt: date))
                names[name] = keyId
            } else {
                index.remove(name)
                names[name] = nil
            }
            guard step % 50 == 0 else { continue }
            let sorted = names.keys.sorted { $0.bytesPrecede($1) }
            for after in [nil, sorted.randomElement(), "alias/2", "alias/zz", ""] as [String?] {
                for limit in [0, 1, 7, 100] {
                    let expected = expectedPage(sorted, after: after, limit: limit)
                    #expect(index.page(after: after, limit: limit, keyId: nil).map(\.alias) == expected)
                    let key = "key_\(step % 5)"
                    let forKey = expectedPage(sorted.filter { names[$0] == key }, after: after, limit: limit)
                    #expect(index.page(after: after, limit: limit, keyId: key).map(\.alias) == forKey)
                }
            }
            for (name, keyId) in names.prefix(5) { #expect(index.byName[name]?.keyId == keyId) }
        }
    }
}
