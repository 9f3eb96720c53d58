import Foundation
import KMSProtocol
import Testing

@Suite struct StrictJSONTests {
    @Test func integersAreKeptApartFromOtherNumbers() throws {
        #expect(try JSONParser.parse(Data("1".utf8)) == .integer(1))
        #expect(try JSONParser.parse(Data("1.0".utf8)) == .number("1.0"))
        #expect(try JSONParser.parse(Data("1e2".utf8)) == .number("1e2"))
        #expect(try JSONParser.parse(Data("-0".utf8)) == .integer(0))
    }

    @Test(arguments: [
        "{\"a\":1,\"a\":2}", "{\"a\":1,}", "[1,]", "01", "{'a':1}", "\"\\x\"", "{} {}", "", "nul", "\"\u{01}\"",
    ])
    func malformedDocumentsAreRefused(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Data(text.utf8)) }
    }

    @Test func stringsDecodeEscapesAndSurrogates() throws {
        #expect(try JSONParser.parse(Data(#""a\n\u00e9\ud83d\ude00/""#.utf8)) == .string("a\né😀/"))
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Data(#""\ud83d""#.utf8)) }
    }

    /// A lone surrogate is well-formed JSON but not text: refused, naming the member that holds it
    /// (lifecycle-v1 rule 9.7: `set.<key>`, `remove[i]`), a key that holds one with U+FFFD in its place.
    @Test(arguments: [
        (#"{"set":{"d":"a\udc00"}}"#, "set.d"), (#"{"remove":["ok","x\ud800"]}"#, "remove[1]"),
        (#"{"set":{"a\ud83d\u0041":"v"}}"#, "set.a\u{FFFD}A"), (#"{"description":"\ud83d"}"#, "description"),
        (#"{"set":{"ok":"\ud83d\ude00","b":"\udfff"},"remove":["\ud800"]}"#, "set.b"),
        (#"{"a\udc00":1}"#, "a\u{FFFD}"), (#""\ud800""#, nil),
    ])
    func aLoneSurrogateNamesItsMember(_ text: String, member: String?) {
        let failure = #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Data(text.utf8)) }
        #expect(failure?.message == "unpaired surrogate" && failure?.member == member, "\(text)")
        guard let member else { return }
        let refused = #expect(throws: RequestFieldError.self) { try JSONObjectReader(bytes: Data(text.utf8)) }
        #expect(refused?.field == member && refused?.message.contains("lone surrogate") == true)
    }

    @Test func readerRefusesUnknownFieldsAndWrongTypes() throws {
        #expect(try RandomRequest.parse(Data(#"{"bytes":16}"#.utf8)) == RandomRequest(bytes: 16))
        let unknown = #expect(throws: RequestFieldError.self) {
            try RandomRequest.parse(Data(#"{"bytes":16,"x":1}"#.utf8))
        }
        #expect(unknown?.field == "x")
        let float = #expect(throws: RequestFieldError.self) { try RandomRequest.parse(Data(#"{"bytes":1.0}"#.utf8)) }
        #expect(float?.field == "bytes")
        let text = #expect(throws: RequestFieldError.self) { try RandomRequest.parse(Data(#"{"bytes":"16"}"#.utf8)) }
        #expect(text?.field == "bytes")
        let range = #expect(throws: RequestFieldError.self) { try RandomRequest.parse(Data(#"{"bytes":1025}"#.utf8)) }
        #expect(range?.field == "bytes")
        let missing = #expect(throws: RequestFieldError.self) { try RandomRequest.parse(Data("{}".utf8)) }
        #expect(missing?.field == "bytes")
        #expect(throws: RequestFieldError.self) { try RandomRequest.parse(Data("[]".utf8)) }
    }

    /// A review finding: names were compared as Swift strings, under which
    /// the Kelvin sign (U+212A) equals `K`, so `wrapped\u212Aey` was read as
    /// `wrappedKey`. Names compare byte for byte; two that are only
    /// equivalent are still refused as duplicates (they would collide in the
    /// dictionaries tags and contexts become).
    @Test func memberNamesCompareByteForByte() throws {
        for text in [
            #"{"sessionId":"abc","wrapped\u212Aey":"AA=="}"#, "{\"sessionId\":\"abc\",\"wrapped\u{212A}ey\":\"AA==\"}",
        ] {
            let refused = #expect(throws: RequestFieldError.self) { try KeyExchangeRequest.parse(Data(text.utf8)) }
            #expect(
                refused?.field == "wrapped\u{212A}ey" || refused?.field == "wrappedKey",
                "\(String(describing: refused))")
        }
        #expect(
            try KeyExchangeRequest.parse(Data(#"{"sessionId":"abc","wrappedKey":"AA=="}"#.utf8)).wrappedKey == "AA==")
        let reader = try JSONObjectReader(bytes: Data(#"{"\u212A":1}"#.utf8))
        #expect(!reader.contains("K") && reader.contains("\u{212A}"))
        #expect(JSONValue.member([("\u{212A}", .integer(1))], named: "K") == nil)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(Data(#"{"caf\u00e9":1,"cafe\u0301":2}"#.utf8)) }
    }

    /// Text a client sends compares by its bytes (`String`'s `==`, `hasPrefix` and `lowercased()` take
    /// the Kelvin sign for a K), and HTTP tokens by their bytes with ASCII letters in either case.
    @Test func textComparesByItsBytes() {
        #expect("Kelvin" == "\u{212A}elvin" && !"Kelvin".bytesEqual("\u{212A}elvin"))
        #expect("Kelvin".bytesEqual("Kelvin") && "a".bytesPrecede("b") && !"b".bytesPrecede("a"))
        #expect("chun\u{212A}ed".lowercased() == "chunked" && !"chun\u{212A}ed".equalsASCIICaseInsensitive("chunked"))
        #expect("Chunked".equalsASCIICaseInsensitive("chunked") && "CLOSE"[...].equalsASCIICaseInsensitive("close"))
        #expect(!"chunke".equalsASCIICaseInsensitive("chunked") && !"chunked ".equalsASCIICaseInsensitive("chunked"))
        // `hasPrefix` goes by characters: `alias/` and a combining mark is one character `/\u{301}`, and
        // dropping six characters would drop the mark too.
        #expect(!"alias/\u{301}x".hasPrefix("alias/") && "alias/\u{301}x".bytesHave(prefix: "alias/"))
        #expect(
            "alias/\u{301}x".bytesAfter(prefix: "alias/") == "\u{301}x" && "alias/x".bytesAfter(prefix: "alias/") == "x"
        )
        #expect("\u{212A}ey_x".hasPrefix("Key_") && !"\u{212A}ey_x".bytesHave(prefix: "Key_"))
        #expect("alias".bytesAfter(prefix: "alias/") == nil && "alias/".bytesAfter(prefix: "alias/") == "")
    }

    @Test func base64IsStrict() {
        #expect(Base64.decodeStrict("AAEC") == Data([0, 1, 2]))
        #expect(Base64.decodeStrict("AA==") == Data([0]))
        #expect(Base64.decodeStrict("") == Data())
        for bad in ["AA", "AA=", "A===", "AB==", "AA-_", "AA\nAA", " AAA", "AA==AA==", "=AAA"] {
            #expect(Base64.decodeStrict(bad) == nil, "\(bad)")
        }
        #expect(Base64.encodeURL(Data([0xFB, 0xFF])) == "-_8")
    }

    @Test func envelopeParsingIsStrict() throws {
        let good = #"{"seq":1,"iv":"AAAAAAAAAAAAAAAA","ciphertext":"","tag":"AAAAAAAAAAAAAAAAAAAAAA=="}"#
        let envelope = try SealedEnvelope(json: Data(good.utf8))
        #expect(envelope.seq == 1 && envelope.iv.count == 12 && envelope.tag.count == 16)
        #expect(try SealedEnvelope(json: envelope.json) == envelope)
        let bad = [
            good.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":1.0"),
            good.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":\"1\""),
            good.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":9007199254740992"),
            good.replacingOccurrences(of: "AAAAAAAAAAAAAAAA", with: "AAAAAAAAAAAA"),
            good.replacingOccurrences(of: "}", with: ",\"extra\":1}"),
            good.replacingOccurrences(of: "AAAAAAAAAAAAAAAAAAAAAA==", with: "AAAAAAAAAAAAAAAAAAAAAA"),
            good.replacingOccurrences(of: ",\"ciphertext\":\"\"", with: ""),
        ]
        for text in bad {
            #expect(throws: SealedEnvelope.Malformed.self, "\(text)") { try SealedEnvelope(json: Data(text.utf8)) }
        }
        // A request's seq: 0, a negative one and one past Int64 get the same message naming the range
        // (they had "at least 1", "between 0 and …" and "got a non-integer number").
        func message(_ seq: String) -> String? {
            let text = good.replacingOccurrences(of: "\"seq\":1", with: "\"seq\":\(seq)")
            do {
                _ = try SealedEnvelope(json: Data(text.utf8), lowestSeq: 1)
                return nil
            } catch {
                return error.message
            }
        }
        for seq in ["0", "-1", "9007199254740992", String(repeating: "9", count: 400)] {
            #expect(message(seq) == "malformed envelope: `seq` must be between 1 and 9007199254740991", "\(seq)")
        }
        #expect(message("1e3") == "malformed envelope: `seq` must be an integer, got a non-integer number")
        // Every wrong length of an iv or a tag gets one message (a 16-byte iv was told "at most 12 bytes").
        for (field, value, bytes) in [
            ("iv", "AAAAAAAAAAAAAAAA", 12), ("tag", "AAAAAAAAAAAAAAAAAAAAAA==", 16),
        ] {
            for wrong in ["", "AAAA", String(repeating: "A", count: 24), String(repeating: "A", count: 42) + "=="] {
                let text = good.replacingOccurrences(of: #""\#(field)":"\#(value)""#, with: #""\#(field)":"\#(wrong)""#)
                do {
                    _ = try SealedEnvelope(json: Data(text.utf8))
                    Issue.record("\(text) was accepted")
                } catch {
                    #expect(
                        error.message == "malformed envelope: `\(field)` must be \(bytes) bytes once decoded", "\(text)"
                    )
                }
            }
        }
        #expect(try SealedEnvelope(json: Data(good.replacingOccurrences(of: ":1,", with: ":0,").utf8)).seq == 0)
    }

    @Test func tokenGrammar() {
        let base = String(repeating: "a", count: 32)
        #expect(ClientToken.isWellFormed(base, prefix: nil))
        #expect(ClientToken.isWellFormed("._~-" + base, prefix: nil))
        #expect(!ClientToken.isWellFormed(String(repeating: "a", count: 31), prefix: nil))
        #expect(!ClientToken.isWellFormed(String(repeating: "a", count: 257), prefix: nil))
        #expect(ClientToken.isWellFormed(String(repeating: "a", count: 256), prefix: nil))
        #expect(!ClientToken.isWellFormed(base + "+", prefix: nil))
        #expect(!ClientToken.isWellFormed(base + "é", prefix: nil))
        #expect(ClientToken.isWellFormed("pfx_" + base, prefix: "pfx_"))
        #expect(!ClientToken.isWellFormed(base, prefix: "pfx_"))
        let issued = ClientToken.issue(prefix: "pfx_")
        #expect(issued.hasPrefix("pfx_") && issued.count == 4 + 43 && ClientToken.isWellFormed(issued, prefix: "pfx_"))
        #expect(ClientToken.hash(base) == ClientToken.hash(base))
        #expect(ClientToken.hash(base) != ClientToken.hash(base + "b"))
        #expect(TokenHash(bytes: ClientToken.hash(base).bytes) == ClientToken.hash(base))
        #expect(TokenHash(bytes: Data(count: 31)) == nil)
    }
}

@Suite struct TimestampTests {
    /// A time read back from its text formats to the same text (a stored
    /// `nextRotationAt` must read the same before and after a restart or a restore).
    @Test func textRoundTripsExactly() {
        for _ in 0..<10_000 {
            let date = Date(timeIntervalSince1970: Double.random(in: 0...4_000_000_000))
            let text = Timestamp.format(date)
            #expect(Timestamp.parse(text).map(Timestamp.format) == text, "\(text)")
        }
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_800_000_000.123_999)) == "2027-01-15T08:00:00.123Z")
    }

    @Test func formatsRFC3339WithMillisecondsAndParsesBothForms() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_796_558_400.123)) == "2026-12-06T12:00:00.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        let date = Date(timeIntervalSince1970: 1_796_558_400.123)
        #expect(Timestamp.parse(Timestamp.format(date)).map { abs($0.timeIntervalSince(date)) < 0.001 } == true)
        #expect(Timestamp.parse("2026-12-06T12:00:00Z") == Date(timeIntervalSince1970: 1_796_558_400))
    }

    @Test func hexIsLowercase() {
        #expect(Hex.encode([0x00, 0x0F, 0xA0, 0xFF]) == "000fa0ff")
    }
}
