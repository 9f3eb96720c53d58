public import Foundation

/// The one JSON encoder configuration for everything sent on the wire.
public enum WireJSON {
    public static func encode(_ value: some Encodable) throws -> Data {
        if let direct = value as? any WireJSONWritable {
            var json = JSONBytes()
            direct.write(to: &json)
            return Data(json.bytes)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        // The fast reader for the usual answer; anything it refuses goes to
        // `JSONDecoder`, so what decodes is never less than it was.
        if let readable = type as? any WireJSONReadable.Type, var reader = try? JSONObjectReader(bytes: data),
            let value = (try? readable.init(readingResponse: &reader)) as? T
        {
            return value
        }
        return try JSONDecoder().decode(type, from: data)
    }
}
