extension String {
    /// Byte order, as the contracts sort ids and aliases.
    public func bytesPrecede(_ other: String) -> Bool { utf8.lexicographicallyPrecedes(other.utf8) }

    /// The same bytes. Swift's `==` on `String` is canonical equivalence, under
    /// which the Kelvin sign (U+212A) equals `K`, U+037E `;` and U+1FEF a
    /// backtick: text a client sends (an operation name, an enum value, a
    /// grant's name) is compared with this, as the contracts compare it (a
    /// review ran CreateKey from `TrentService.Create\u{212A}ey`).
    public func bytesEqual(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }

    /// What follows `prefix` when this text's bytes begin with its bytes; nil otherwise.
    /// `hasPrefix` and `dropFirst` go by characters: a combining mark after the prefix's last
    /// character (`alias/\u{301}x`) fails `hasPrefix`, and dropping the prefix's count of characters
    /// from text that passed it would drop the mark with it. The contracts' prefixes (`key_`, `alias/`,
    /// an ARN's) are bytes.
    public func bytesAfter(prefix: String) -> String? {
        guard bytesHave(prefix: prefix) else { return nil }
        return String(decoding: utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
    }
}

extension StringProtocol {
    /// Whether the bytes begin with `prefix`'s bytes (`hasPrefix` by bytes: see `bytesAfter(prefix:)`).
    public func bytesHave(prefix: String) -> Bool { utf8.starts(with: prefix.utf8) }
}

extension Dictionary where Key == String {
    /// The key held here that reads the same as `key` (canonical equivalence, which a `String`
    /// dictionary goes by) but is other bytes; nil when there is none. One lookup.
    public func keyReadingSame(as key: String) -> String? {
        guard let index = index(forKey: key), !keys[index].bytesEqual(key) else { return nil }
        return keys[index]
    }
}

extension StringProtocol {
    /// No byte past ASCII: text that protocol code then splits, trims and compares as characters
    /// means what its bytes mean (no U+037E read as `;`, no U+3000 trimmed as white space).
    public var isAllASCII: Bool { utf8.allSatisfy { $0 < 0x80 } }

    /// One or more of `0`-`9` and nothing else. `Int(_:)` also takes a sign (`+5`, `-0`), which no
    /// count, port, limit or sequence number written by hand or by this project carries: text that
    /// is to be a whole number is checked with this first, so that one spelling means one number.
    public var isDecimalDigits: Bool {
        !isEmpty && utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// The same bytes as `lowercase` (ASCII, in lower case), ASCII letters in either case: how HTTP
    /// compares tokens (`chunked`, `close`, `100-continue`). `lowercased()` maps the Kelvin sign to
    /// `k`, so `chun\u{212A}ed` compared as `chunked` (a review).
    public func equalsASCIICaseInsensitive(_ lowercase: String) -> Bool {
        utf8.elementsEqual(lowercase.utf8) { byte, expected in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 == expected : byte == expected
        }
    }
}
