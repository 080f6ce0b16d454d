/// A chat message sent to a language model.
public struct ChatMessage: Sendable, Hashable, Codable {
    /// Who wrote the message.
    public enum Role: String, Sendable, Hashable, Codable {
        case system, user, assistant
    }

    /// Who wrote the message.
    public var role: Role
    /// The text.
    public var content: String

    /// Creates a message.
    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    /// A system message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: .system, content: content) }
    /// A user message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: .user, content: content) }
    /// An assistant message.
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: .assistant, content: content) }
}

/// Tokens consumed by model calls.
public struct TokenUsage: Sendable, Hashable, Codable {
    /// Prompt tokens, including cached ones.
    public var inputTokens: Int
    /// Completion tokens.
    public var outputTokens: Int
    /// Prompt tokens the provider served from its cache (a part of ``inputTokens``).
    public var cachedInputTokens: Int
    /// Prompt tokens the provider wrote to its cache for later calls (a part of ``inputTokens``;
    /// Anthropic bills them above the input price, OpenAI does not report them).
    public var cacheWriteInputTokens: Int

    /// Creates a usage record.
    public init(inputTokens: Int = 0, outputTokens: Int = 0, cachedInputTokens: Int = 0, cacheWriteInputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteInputTokens = cacheWriteInputTokens
    }

    private enum CodingKeys: String, CodingKey {
        case inputTokens, outputTokens, cachedInputTokens, cacheWriteInputTokens
    }

    /// Decodes a record; ones written before ``cacheWriteInputTokens`` existed decode with 0.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        inputTokens = try container.decode(Int.self, forKey: .inputTokens)
        outputTokens = try container.decode(Int.self, forKey: .outputTokens)
        cachedInputTokens = try container.decodeIfPresent(Int.self, forKey: .cachedInputTokens) ?? 0
        cacheWriteInputTokens = try container.decodeIfPresent(Int.self, forKey: .cacheWriteInputTokens) ?? 0
    }

    /// Input plus output tokens.
    public var totalTokens: Int { inputTokens + outputTokens }

    /// Adds two usage records.
    public static func + (lhs: TokenUsage, rhs: TokenUsage) -> TokenUsage {
        TokenUsage(
            inputTokens: lhs.inputTokens + rhs.inputTokens,
            outputTokens: lhs.outputTokens + rhs.outputTokens,
            cachedInputTokens: lhs.cachedInputTokens + rhs.cachedInputTokens,
            cacheWriteInputTokens: lhs.cacheWriteInputTokens + rhs.cacheWriteInputTokens)
    }

    /// Adds `rhs` to `lhs`.
    public static func += (lhs: inout TokenUsage, rhs: TokenUsage) { lhs = lhs + rhs }
}

/// What a language model returned.
public struct ModelResponse: Sendable, Hashable {
    /// The reply text.
    public var text: String
    /// Tokens the call consumed, as the provider reported them.
    public var usage: TokenUsage

    /// Creates a response.
    public init(text: String, usage: TokenUsage = TokenUsage()) {
        self.text = text
        self.usage = usage
    }
}

/// A JSON schema a reply must follow, for servers that constrain replies to one (OpenAI's and
/// vLLM's structured outputs, llama.cpp's grammars).
public struct ReplySchema: Sendable, Hashable {
    /// A short name for the schema (OpenAI's `json_schema.name`).
    public var name: String
    /// The JSON schema, as JSON text.
    public var json: String

    /// Creates a schema.
    public init(name: String, json: String) {
        self.name = name
        self.json = json
    }
}

/// A language model: messages in, text and token usage out.
///
/// This is the engine's only seam to models, so the engine has no HTTP dependency. HTTP
/// providers implement it in their own module; `RLMTesting` has a scripted one for tests.
///
/// ```swift
/// struct Echo: LanguageModel {
///     func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
///         ModelResponse(text: messages.last?.content ?? "")
///     }
/// }
/// ```
public protocol LanguageModel: Sendable {
    /// Sends the conversation and returns the model's reply.
    ///
    /// Implementations should honour task cancellation: the engine cancels calls when a run
    /// ends early.
    func complete(_ messages: [ChatMessage]) async throws -> ModelResponse

    /// The name usage and prices are recorded under. Defaults to the type's name.
    var modelName: String { get }

    /// Like ``complete(_:)``, calling `onText` with each piece of the reply as it arrives.
    ///
    /// The default calls ``complete(_:)`` and passes the whole reply once; models that can stream
    /// (server-sent events) override it. The engine uses it for the root model's turns when
    /// ``RLMConfiguration/streamRootReplies`` is on.
    func complete(_ messages: [ChatMessage], onText: @escaping @Sendable (String) -> Void) async throws -> ModelResponse

    /// Like ``complete(_:)``, asking the server to constrain the reply to `schema` (see
    /// ``RLMConfiguration/structuredOutput``). The engine's prompt describes the format too, so
    /// the default, which ignores the schema and calls ``complete(_:)``, suits a model whose
    /// server cannot constrain replies: its reply is read as text when it is not the JSON asked for.
    func complete(_ messages: [ChatMessage], schema: ReplySchema) async throws -> ModelResponse

    /// Values the engine must keep out of everything a run produces, such as the API key this
    /// model sends (see ``RLMConfiguration/secrets``). Defaults to none.
    var secrets: [String] { get }

    /// How much the model reads in one call. Defaults to ``ContextWindow/known(forModel:)`` for
    /// ``modelName``; `nil` (unknown) turns the engine's checks off, leaving the server to refuse.
    var contextWindow: ContextWindow? { get }

    /// What besides the messages decides this model's reply, for ``ModelCache`` keys. Defaults
    /// to no settings and not sampled: a model whose replies vary (a temperature above 0) should
    /// say so, so that caches pass its replies over.
    var cacheIdentity: CacheIdentity { get }
}

extension LanguageModel {
    /// The type's name.
    public var modelName: String { String(describing: Self.self) }

    /// None.
    public var secrets: [String] { [] }

    /// The published window of a well-known model name, else `nil`.
    public var contextWindow: ContextWindow? { ContextWindow.known(forModel: modelName) }

    /// No settings, not sampled.
    public var cacheIdentity: CacheIdentity { CacheIdentity(settings: "", isSampled: false) }

    /// Calls ``complete(_:)``: the schema is left to the prompt.
    public func complete(_ messages: [ChatMessage], schema: ReplySchema) async throws -> ModelResponse {
        try await complete(messages)
    }

    /// Calls ``complete(_:)`` and passes the whole reply to `onText` once.
    public func complete(_ messages: [ChatMessage], onText: @escaping @Sendable (String) -> Void) async throws -> ModelResponse {
        let response = try await complete(messages)
        onText(response.text)
        return response
    }
}
