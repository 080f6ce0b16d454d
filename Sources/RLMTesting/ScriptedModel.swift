import RLM
import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// A deterministic ``LanguageModel`` for tests, examples and offline demos.
///
/// It answers from a script instead of a network: either a fixed sequence of replies (typical
/// for the root model, whose replies contain ```repl code) or a function of the request
/// (typical for sub-calls). Usage is deterministic: one token per four characters, rounded up,
/// for the messages in and the reply out. Every call is recorded for assertions.
///
/// ```swift
/// let root = ScriptedModel.sequence([
///     "```repl\nanswer['content'] = str(len(context)); answer['ready'] = True\n```",
/// ])
/// let sub = ScriptedModel(name: "sub") { request in request.prompt.uppercased() }
/// ```
public final class ScriptedModel: LanguageModel {
    /// One call as the model saw it.
    public struct Request: Sendable {
        /// The conversation sent.
        public var messages: [ChatMessage]
        /// The 0-based index of this call among the model's calls.
        public var index: Int
        /// The schema the reply was asked to follow (``LanguageModel/complete(_:schema:)``), if any.
        public var schema: ReplySchema?
        /// The last user message: for a sub-call, its prompt.
        public var prompt: String { messages.last(where: { $0.role == .user })?.content ?? "" }
    }

    /// The error a script throws when it has no reply for a call.
    public struct ScriptExhausted: Error, CustomStringConvertible {
        /// The call that had no reply.
        public var index: Int
        public var description: String { "the scripted model has no reply for call #\(index + 1)" }
    }

    public let modelName: String
    /// The window the engine checks prompts against; `nil` (the default) checks nothing.
    public let contextWindow: ContextWindow?
    private let latency: Duration
    private let respond: @Sendable (Request) async throws -> String
    private let log = Mutex<[Request]>([])
    private let answered = Mutex<[Int: String]>([:])
    private let inFlight = Mutex((current: 0, peak: 0))

    /// A model that replies with `respond(request)` after `latency`.
    public init(
        name: String = "scripted", latency: Duration = .zero, contextWindow: ContextWindow? = nil,
        respond: @escaping @Sendable (Request) async throws -> String
    ) {
        self.modelName = name
        self.contextWindow = contextWindow
        self.latency = latency
        self.respond = respond
    }

    /// A model that replies with `replies` in order and fails once they run out.
    public static func sequence(
        _ replies: [String], name: String = "scripted", latency: Duration = .zero, contextWindow: ContextWindow? = nil
    ) -> ScriptedModel {
        ScriptedModel(name: name, latency: latency, contextWindow: contextWindow) { request in
            guard request.index < replies.count else { throw ScriptExhausted(index: request.index) }
            return replies[request.index]
        }
    }

    /// The tokens a text counts for: one per four characters, rounded up.
    public static func tokens(_ text: String) -> Int { (text.count + 3) / 4 }

    public func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        try await reply(to: messages, schema: nil)
    }

    /// Replies as ``complete(_:)`` does, recording `schema` in the call's ``Request``.
    public func complete(_ messages: [ChatMessage], schema: ReplySchema) async throws -> ModelResponse {
        try await reply(to: messages, schema: schema)
    }

    private func reply(to messages: [ChatMessage], schema: ReplySchema?) async throws -> ModelResponse {
        let request = log.withLock { log -> Request in
            let request = Request(messages: messages, index: log.count, schema: schema)
            log.append(request)
            return request
        }
        inFlight.withLock { $0.current += 1; $0.peak = max($0.peak, $0.current) }
        defer { inFlight.withLock { $0.current -= 1 } }
        if latency > .zero { try await Task.sleep(for: latency) }
        let text = try await respond(request)
        answered.withLock { $0[request.index] = text }
        let input = messages.reduce(0) { $0 + Self.tokens($1.content) }
        return ModelResponse(text: text, usage: TokenUsage(inputTokens: input, outputTokens: Self.tokens(text)))
    }

    /// Every call so far, in order.
    public var requests: [Request] { log.withLock { $0 } }
    /// The replies given so far, by call index (calls that failed have none).
    public var replies: [Int: String] { answered.withLock { $0 } }
    /// How many calls were made.
    public var callCount: Int { log.withLock { $0.count } }
    /// The most calls that were in flight at once.
    public var peakConcurrency: Int { inFlight.withLock { $0.peak } }
}
