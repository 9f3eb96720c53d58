/// The error object of protocol v1 section 8, plain or as a sealed inner body.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public var requestId: String
        /// The offending request field, when one is to blame.
        public var field: String?

        public init(code: String, message: String, requestId: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.requestId = requestId
            self.field = field
        }
    }

    public var error: Detail

    public init(error: Detail) { self.error = error }
}
