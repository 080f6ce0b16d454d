import AsyncHTTPClient
import Foundation
import Logging
import RLM

/// A model behind Anthropic's Messages API.
///
/// System messages go to the top-level `system` field; the reply is the text of all text
/// blocks (thinking blocks are skipped).
public struct AnthropicModel: LanguageModel {
    /// Connection and sampling settings.
    public struct Configuration: Sendable {
        /// The API root. Defaults to `https://api.anthropic.com`; requests go to `<baseURL>/v1/messages`.
        public var baseURL: String
        /// The model name, also used for usage and prices.
        public var model: String
        /// The environment variable holding the API key. Defaults to `ANTHROPIC_API_KEY`.
        /// The API key itself, for keys that do not live in the process environment (one per
        /// tenant or per request). When set, ``apiKeyVariable`` is not read. Defaults to `nil`.
        public var apiKey: APIKey?
        public var apiKeyVariable: String?
        /// The `anthropic-version` header. Defaults to `2023-06-01`.
        public var version: String
        /// `max_tokens` (required by the API). Defaults to 8192.
        public var maxTokens: Int
        /// Sampling temperature. Defaults to `nil`.
        public var temperature: Double?
        /// Extra headers sent with every request (for example `anthropic-beta`).
        public var extraHeaders: [String: String]
        /// How long one HTTP attempt may take. Defaults to 300 s.
        public var requestTimeout: Duration
        /// Retries for 408, 429, 5xx (including 529 overloaded), timeouts and dropped connections.
        public var retry: RetryPolicy
        /// The model's context window. Defaults to `nil`: 200,000 tokens for Claude models
        /// (``ContextWindow/known(forModel:)``), with ``maxTokens`` kept for the reply.
        public var contextWindow: ContextWindow?
        /// Marks the system prompt and the conversation so far for Anthropic's prompt cache
        /// (`cache_control: ephemeral` on the system block and on the last message), so that an
        /// RLM's next turn reads its unchanged prefix from the cache. Defaults to `true`.
        /// Prefixes shorter than the model's minimum (1,024 tokens for most models) are not cached.
        public var promptCaching: Bool = true

        /// Creates a configuration.
        public init(
            baseURL: String = "https://api.anthropic.com", model: String, apiKeyVariable: String? = "ANTHROPIC_API_KEY",
            version: String = "2023-06-01", maxTokens: Int = 8192, temperature: Double? = nil,
            extraHeaders: [String: String] = [:], requestTimeout: Duration = .seconds(300), retry: RetryPolicy = RetryPolicy()
        ) {
            self.baseURL = baseURL
            self.model = model
            self.apiKeyVariable = apiKeyVariable
            self.version = version
            self.maxTokens = maxTokens
            self.temperature = temperature
            self.extraHeaders = extraHeaders
            self.requestTimeout = requestTimeout
            self.retry = retry
        }
    }

    /// The settings.
    public let configuration: Configuration
    private let transport: HTTPTransport
    private let apiKey: APIKey?

    /// The API key, so that the engine redacts it from everything a run produces.
    public var secrets: [String] { apiKey.map { [$0.value] } ?? [] }

    public var modelName: String { configuration.model }

    /// The server and the settings that shape the reply; sampled unless the temperature is 0
    /// (the server's default temperature samples).
    public var cacheIdentity: CacheIdentity {
        let c = configuration
        return CacheIdentity(
            settings: "anthropic;\(c.baseURL);\(c.version);temperature=\(c.temperature.map { "\($0)" } ?? "default");max_tokens=\(c.maxTokens)",
            isSampled: c.temperature != 0)
    }

    /// The configured window, else the published window of a well-known model name (looked up
    /// once, when the model is made).
    public let contextWindow: ContextWindow?

    /// Creates a model; throws when the base URL is unusable or a needed API key is missing.
    public init(configuration: Configuration, client: HTTPClient = ModelHTTPClient.shared, logger: Logger = Logger(label: "rlm.provider.anthropic")) throws {
        self.configuration = configuration
        contextWindow = configuration.contextWindow
            ?? ContextWindow.known(forModel: configuration.model, reservingForReply: configuration.maxTokens)
        (transport, apiKey) = try HTTPTransport.make(
            baseURL: configuration.baseURL, model: configuration.model, apiKey: configuration.apiKey,
            apiKeyVariable: configuration.apiKeyVariable, provider: "the Anthropic API",
            timeout: configuration.requestTimeout, retry: configuration.retry, client: client, logger: logger)
    }

    public func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        let system = messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n\n")
        var conversation: [[String: Any]] = messages.filter { $0.role != .system }.map { ["role": $0.role.rawValue, "content": $0.content] }
        let caching = configuration.promptCaching
        if caching, let last = conversation.indices.last, let text = conversation[last]["content"] as? String {
            conversation[last]["content"] = [Self.cachedBlock(text)]
        }
        var body: [String: Any] = [
            "model": configuration.model,
            "max_tokens": configuration.maxTokens,
            "messages": conversation,
        ]
        if !system.isEmpty { body["system"] = caching ? [Self.cachedBlock(system)] as Any : system }
        if let temperature = configuration.temperature { body["temperature"] = temperature }
        var headers = configuration.extraHeaders.map { ($0.key, $0.value) }
        headers.append(("anthropic-version", configuration.version))
        if let apiKey { headers.append(("x-api-key", apiKey.value)) }
        let data = try await transport.post(path: "/v1/messages", headers: headers, body: try JSONSerialization.data(withJSONObject: body))
        return try Self.parse(data, baseURL: transport.baseURL)
    }

    /// A text block that ends a prefix for the prompt cache.
    private static func cachedBlock(_ text: String) -> [String: Any] {
        ["type": "text", "text": text, "cache_control": ["type": "ephemeral"]]
    }

    static func parse(_ data: Data, baseURL: String) throws -> ModelResponse {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let content = object["content"] as? [[String: Any]]
        else {
            throw ProviderError(code: .malformedResponse, message: "\(baseURL) answered, but not with a Messages response: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        let text = content.filter { $0["type"] as? String == "text" }.compactMap { $0["text"] as? String }.joined()
        let usage = object["usage"] as? [String: Any] ?? [:]
        let cacheRead = usage["cache_read_input_tokens"] as? Int ?? 0
        let cacheWrite = usage["cache_creation_input_tokens"] as? Int ?? 0
        return ModelResponse(text: text, usage: TokenUsage(
            inputTokens: (usage["input_tokens"] as? Int ?? 0) + cacheRead + cacheWrite,
            outputTokens: usage["output_tokens"] as? Int ?? 0,
            cachedInputTokens: cacheRead, cacheWriteInputTokens: cacheWrite))
    }
}
