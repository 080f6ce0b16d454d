/// An error from a model provider, with a message that says what to fix.
///
/// Messages never contain API keys.
public struct ProviderError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case missingAPIKey, invalidConfiguration, authentication, rateLimited, server, timeout, unreachable,
                malformedResponse, badRequest
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The environment variable that should hold the API key is not set.
        public static let missingAPIKey = Code(.missingAPIKey)
        /// The base URL or another setting is unusable.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The server rejected the credentials (HTTP 401 or 403).
        public static let authentication = Code(.authentication)
        /// HTTP 429 persisted through every retry.
        public static let rateLimited = Code(.rateLimited)
        /// HTTP 5xx persisted through every retry.
        public static let server = Code(.server)
        /// The request timed out (after every retry).
        public static let timeout = Code(.timeout)
        /// Nothing answered at the base URL, or the connection kept dropping.
        public static let unreachable = Code(.unreachable)
        /// The server answered, but not with a response this client understands.
        public static let malformedResponse = Code(.malformedResponse)
        /// The server refused the request (another 4xx): the message quotes its reason.
        public static let badRequest = Code(.badRequest)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// What happened and what to change.
    public var message: String
    /// The HTTP status, when there was a response.
    public var statusCode: Int?

    /// Creates an error.
    public init(code: Code, message: String, statusCode: Int? = nil) {
        self.code = code
        self.message = message
        self.statusCode = statusCode
    }

    public var description: String { message }
}
