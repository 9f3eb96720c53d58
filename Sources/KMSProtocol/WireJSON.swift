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
        try JSONDecoder().decode(type, from: data)
    }
}
