import Foundation

/// A request body the server reads strictly: through `JSONObjectReader`, so
/// that unknown fields, wrong types and out-of-range values are refused with
/// the field named. `Encodable` is for clients that send it.
public protocol StrictDecodable: Sendable {
    /// Reads the members; `parse` calls `finish()` afterwards to refuse the rest.
    init(reading reader: inout JSONObjectReader) throws(RequestFieldError)
}

extension StrictDecodable {
    /// Parses a whole body into `Self`.
    public static func parse(_ bytes: some Sequence<UInt8>) throws(RequestFieldError) -> Self {
        var reader = try JSONObjectReader(bytes: bytes)
        let value = try Self(reading: &reader)
        try reader.finish()
        return value
    }
}

/// `{}`: the inner body of requests and responses that carry nothing.
public struct EmptyBody: Codable, StrictDecodable, Equatable {
    public init() {}
    public init(reading reader: inout JSONObjectReader) throws(RequestFieldError) {}
}
