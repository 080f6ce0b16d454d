/// An error that ends an RLM run.
///
/// When a limit ends the run, ``limit`` names it and ``partialAnswer`` holds the best answer so
/// far: the last non-empty `answer["content"]` the root model set, never raw model text.
///
/// ```swift
/// do {
///     let result = try await rlm.complete(query: query, context: .text(text))
/// } catch let error as RLMError where error.code == .limitReached {
///     print("stopped by the \(error.limit!); best answer:", error.partialAnswer ?? "none")
/// }
/// ```
public struct RLMError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case limitReached, modelFailed, pythonFailed, invalidContext, invalidConfiguration, sessionClosed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A budget or iteration limit ended the run; see ``RLMError/limit``.
        public static let limitReached = Code(.limitReached)
        /// The root model's call failed.
        public static let modelFailed = Code(.modelFailed)
        /// The embedded interpreter failed (it could not start, or a namespace was abandoned).
        public static let pythonFailed = Code(.pythonFailed)
        /// The context could not be loaded (a missing file, invalid UTF-8).
        public static let invalidContext = Code(.invalidContext)
        /// The configuration is inconsistent (for example a zero iteration limit).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// ``RLMSession/complete(query:context:trajectory:)`` was called after ``RLMSession/close()``.
        public static let sessionClosed = Code(.sessionClosed)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The limit that ended the run, for ``Code/limitReached``.
    public var limit: Limit?
    /// What happened and, where it helps, what to change.
    public var message: String
    /// The best answer so far, if the root model had set `answer["content"]`.
    public var partialAnswer: String?
    /// Usage up to the failure.
    public var usage: UsageSummary?
    /// The error underneath, when there is one: for ``Code/modelFailed`` the provider's error
    /// (`RLMProviders.ProviderError` tells a 429 from a 401, and whether a retry could help).
    public var cause: (any Error)?

    /// Creates an error.
    public init(
        code: Code, message: String, limit: Limit? = nil, partialAnswer: String? = nil, usage: UsageSummary? = nil,
        cause: (any Error)? = nil
    ) {
        self.cause = cause
        self.code = code
        self.message = message
        self.limit = limit
        self.partialAnswer = partialAnswer
        self.usage = usage
    }

    static func limitReached(_ limit: Limit) -> RLMError {
        RLMError(code: .limitReached, message: "the run reached its \(limit)", limit: limit)
    }

    public var description: String { message }
}
