public import Foundation

/// Where a sealed request carries its envelope (protocol v1 section 9), decided
/// in this one place for the server, the Swift client and the tests.
///
/// POST carries the envelope JSON as its body. GET and DELETE have no body:
/// the envelope travels, as the base64 of its JSON, in `X-KMS-Envelope`, and
/// what it seals is the empty byte string.
public enum EnvelopePlacement: Sendable, Equatable {
    case body
    case header

    /// The header that carries the client token on every sealed request.
    public static let tokenHeader = "X-Client-Token"
    /// The header that carries the envelope of a bodyless request.
    public static let envelopeHeader = "X-KMS-Envelope"

    public init(method: String) {
        self = method.uppercased() == "POST" ? .body : .header
    }

    /// Whether the sealed inner request must be the empty byte string.
    public var sealsEmptyBody: Bool { self == .header }

    /// The inner JSON a handler reads: a bodyless request reads as `{}`.
    public func innerJSON(_ plaintext: Data) -> Data {
        sealsEmptyBody ? Data("{}".utf8) : plaintext
    }

    /// The `X-KMS-Envelope` value for an envelope.
    public static func headerValue(_ envelope: SealedEnvelope) -> String {
        Base64.encode(envelope.json)
    }

    /// The envelope JSON a `X-KMS-Envelope` value carries, or nil when it is not strict base64.
    public static func json(fromHeader value: String) -> Data? {
        Base64.decodeStrict(value)
    }
}
