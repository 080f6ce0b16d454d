import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RLM

/// How an OpenAI-compatible server takes a JSON schema for a reply.
public enum StructuredOutput: String, Sendable, Hashable, CaseIterable {
    /// `"response_format": {"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`:
    /// OpenAI, vLLM, llama.cpp's own server (`llama-server`), LM Studio, Ollama.
    case jsonSchema = "json-schema"
    /// `"response_format": {"type": "json_object", "schema": …}`: llama-cpp-python's server.
    case jsonObject = "json-object"
}

/// A model behind an OpenAI-compatible Chat Completions API: OpenAI, vLLM, Ollama, llama.cpp
/// server, LM Studio, OpenRouter and other gateways.
///
/// ```swift
/// let model = try OpenAICompatibleModel(configuration: .init(
///     baseURL: "http://127.0.0.1:8000/v1", model: "Qwen/Qwen3-8B", apiKeyVariable: nil))
/// ```
public struct OpenAICompatibleModel: LanguageModel {
    /// Connection and sampling settings.
    public struct Configuration: Sendable {
        /// The API root, for example `https://api.openai.com/v1`; requests go to
        /// `<baseURL>/chat/completions`.
        public var baseURL: String
        /// The model name sent to the server, also used for usage and prices.
        public var model: String
        /// The environment variable holding the API key. Defaults to `OPENAI_API_KEY`. A key is
        /// required unless the server is on this machine; `nil` sends none.
        /// The API key itself, for keys that do not live in the process environment (one per
        /// tenant or per request). When set, ``apiKeyVariable`` is not read. Defaults to `nil`.
        public var apiKey: APIKey?
        public var apiKeyVariable: String?
        /// Extra headers sent with every request (for example a gateway's routing header).
        public var extraHeaders: [String: String]
        /// Sampling temperature. Defaults to `nil` (the server's default).
        public var temperature: Double?
        /// The most completion tokens. Defaults to `nil`.
        public var maxTokens: Int?
        /// A sampling seed, where the server takes one. Defaults to `nil`.
        public var seed: Int?
        /// `reasoning_effort` for reasoning models (`"low"`, `"medium"`, `"high"`). Defaults to `nil`.
        public var reasoningEffort: String?
        /// How long one HTTP attempt may take. Defaults to 300 s.
        public var requestTimeout: Duration
        /// Retries for 408, 429, 5xx, timeouts and dropped connections.
        public var retry: RetryPolicy
        /// How the server takes a JSON schema for a reply (``complete(_:schema:)``). Defaults to
        /// ``StructuredOutput/jsonSchema``; `nil` sends no schema and leaves the format to the prompt.
        public var structuredOutput: StructuredOutput? = .jsonSchema
        /// The model's context window. Defaults to `nil`: the published window of a well-known
        /// model name (``ContextWindow/known(forModel:)``); ``discoverContextWindow()`` asks the
        /// server, which knows the window a local server was started with.
        public var contextWindow: ContextWindow?

        /// Creates a configuration.
        public init(
            baseURL: String, model: String, apiKeyVariable: String? = "OPENAI_API_KEY", extraHeaders: [String: String] = [:],
            temperature: Double? = nil, maxTokens: Int? = nil, seed: Int? = nil, reasoningEffort: String? = nil,
            requestTimeout: Duration = .seconds(300), retry: RetryPolicy = RetryPolicy()
        ) {
            self.baseURL = baseURL
            self.model = model
            self.apiKeyVariable = apiKeyVariable
            self.extraHeaders = extraHeaders
            self.temperature = temperature
            self.maxTokens = maxTokens
            self.seed = seed
            self.reasoningEffort = reasoningEffort
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
            settings: "openai;\(c.baseURL);temperature=\(c.temperature.map { "\($0)" } ?? "default");max_tokens=\(c.maxTokens.map { "\($0)" } ?? "-");seed=\(c.seed.map { "\($0)" } ?? "-");reasoning=\(c.reasoningEffort ?? "-")",
            isSampled: c.temperature != 0)
    }

    /// The configured window, else the published window of a well-known model name (looked up
    /// once, when the model is made).
    public let contextWindow: ContextWindow?

    /// The model's window as the server reports it in its model list (`GET <baseURL>/models`),
    /// or `nil` when it reports none. vLLM (`max_model_len`), OpenRouter and LM Studio
    /// (`context_length`), Groq (`context_window`) and llama.cpp's server (`meta.n_ctx`, else
    /// `meta.n_ctx_train`) report one; OpenAI does not.
    public func discoverContextWindow(timeout: Duration = .seconds(5)) async throws -> ContextWindow? {
        var headers = configuration.extraHeaders.map { ($0.key, $0.value) }
        if let apiKey { headers.append(("authorization", "Bearer \(apiKey.value)")) }
        let data = try await transport.get(path: "/models", headers: headers, timeout: timeout)
        guard let tokens = Self.contextWindow(inModelList: data, model: configuration.model) else { return nil }
        return ContextWindow(tokens: tokens, reservedForReply: configuration.maxTokens)
    }

    /// The window of `model` in an OpenAI-style model list.
    static func contextWindow(inModelList data: Data, model: String) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let entries = (object["data"] ?? object["models"]) as? [[String: Any]]
        else { return nil }
        let entry = entries.first { ($0["id"] as? String) == model } ?? (entries.count == 1 ? entries.first : nil)
        guard let entry else { return nil }
        let meta = entry["meta"] as? [String: Any] ?? [:]
        for value in [entry["max_model_len"], entry["context_length"], entry["context_window"], meta["n_ctx"], meta["n_ctx_train"]] {
            if let tokens = value as? Int, tokens > 0 { return tokens }
        }
        return nil
    }

    /// Creates a model; throws when the base URL is unusable or a needed API key is missing.
    ///
    /// - Parameter client: the HTTP client; defaults to the process-wide shared one, so every
    ///   model reuses the same connection pool.
    public init(configuration: Configuration, client: HTTPClient = ModelHTTPClient.shared, logger: Logger = Logger(label: "rlm.provider.openai")) throws {
        self.configuration = configuration
        contextWindow = configuration.contextWindow
            ?? ContextWindow.known(forModel: configuration.model, reservingForReply: configuration.maxTokens)
        (transport, apiKey) = try HTTPTransport.make(
            baseURL: configuration.baseURL, model: configuration.model, apiKey: configuration.apiKey,
            apiKeyVariable: configuration.apiKeyVariable, provider: "the OpenAI-compatible server",
            timeout: configuration.requestTimeout, retry: configuration.retry, client: client, logger: logger)
    }

    public func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        let (headers, body) = request(messages, stream: false)
        let data = try await transport.post(path: "/chat/completions", headers: headers, body: body)
        return try Self.parse(data, baseURL: transport.baseURL)
    }

    /// Sends `schema` as the request's `response_format`, in the configuration's
    /// ``Configuration/structuredOutput`` style (without one, calls ``complete(_:)``). Throws
    /// ``ProviderError/Code/invalidConfiguration`` when the schema is not a JSON object.
    public func complete(_ messages: [ChatMessage], schema: ReplySchema) async throws -> ModelResponse {
        guard let style = configuration.structuredOutput else { return try await complete(messages) }
        guard let node = try? JSONDecoder().decode(Wire.JSON.self, from: Data(schema.json.utf8)), case .object = node else {
            throw ProviderError(code: .invalidConfiguration, message: "the reply schema '\(schema.name)' is not a JSON object: \(schema.json.prefix(200))")
        }
        let format = switch style {
        case .jsonSchema: Wire.ResponseFormat(type: "json_schema", json_schema: .init(name: schema.name, schema: node, strict: true))
        case .jsonObject: Wire.ResponseFormat(type: "json_object", schema: node)
        }
        let (headers, body) = request(messages, stream: false, format: format)
        let data = try await transport.post(path: "/chat/completions", headers: headers, body: body)
        return try Self.parse(data, baseURL: transport.baseURL)
    }

    /// Streams the reply with server-sent events (`"stream": true`), passing each piece to `onText`.
    /// Usage comes from the final chunk (`stream_options.include_usage`).
    public func complete(_ messages: [ChatMessage], onText: @escaping @Sendable (String) -> Void) async throws -> ModelResponse {
        let (headers, body) = request(messages, stream: true)
        let baseURL = transport.baseURL
        return try await transport.send(path: "/chat/completions", headers: headers, body: body) { response, delivery in
            var parser = ServerSentEvents()
            var text = ""
            var usage = TokenUsage()
            var sawData = false
            func handle(_ payload: String) throws {
                guard payload != "[DONE]" else { return }
                guard let chunk = try? Self.decoder.decode(Wire.Chunk.self, from: Data(payload.utf8)) else {
                    throw ProviderError(code: .malformedResponse, message: "\(baseURL) sent a stream event that is not JSON: \(payload.prefix(200))")
                }
                sawData = true
                if let piece = chunk.choices?.first?.delta?.content?.text, !piece.isEmpty {
                    delivery.start()
                    text += piece
                    onText(piece)
                }
                if let reported = chunk.usage { usage = reported.tokenUsage }
            }
            for try await chunk in response.body {
                for payload in parser.feed(chunk.readableBytesView) { try handle(payload) }
            }
            for payload in parser.finish() { try handle(payload) }
            guard sawData else {
                throw ProviderError(code: .malformedResponse, message: "\(baseURL) answered a streaming request without any events")
            }
            return ModelResponse(text: text, usage: usage)
        }
    }

    private func request(_ messages: [ChatMessage], stream: Bool, format: Wire.ResponseFormat? = nil) -> ([(String, String)], Data) {
        let body = Wire.Request(
            model: configuration.model,
            messages: messages.map { Wire.Message(role: $0.role.rawValue, content: $0.content) },
            temperature: configuration.temperature, max_tokens: configuration.maxTokens, seed: configuration.seed,
            reasoning_effort: configuration.reasoningEffort,
            stream: stream ? true : nil, stream_options: stream ? Wire.StreamOptions(include_usage: true) : nil, response_format: format)
        var headers = configuration.extraHeaders.map { ($0.key, $0.value) }
        if let apiKey { headers.append(("authorization", "Bearer \(apiKey.value)")) }
        return (headers, (try? Self.encoder.encode(body)) ?? Data())
    }

    // Codable rather than JSONSerialization: on Linux, JSONSerialization spends ~25 µs encoding
    // even a one-message request (bridging through NSDictionary); JSONEncoder takes ~4 µs. One
    // encoder and one decoder serve every request and every streamed event.
    private static let encoder = JSONEncoder()
    private static let decoder = JSONDecoder()

    static func parse(_ data: Data, baseURL: String) throws -> ModelResponse {
        guard let completion = try? Self.decoder.decode(Wire.Completion.self, from: data), let message = completion.choices.first?.message else {
            throw ProviderError(code: .malformedResponse, message: "\(baseURL) answered, but not with a chat completion: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        return ModelResponse(text: message.content?.text ?? "", usage: completion.usage?.tokenUsage ?? TokenUsage())
    }
}

/// The Chat Completions wire format: only the fields swift-rlm sends or reads. Unknown fields are
/// ignored and every field read is optional, so servers that omit or add fields still work.
enum Wire {
    struct Message: Encodable {
        var role: String
        var content: String
    }

    struct StreamOptions: Encodable {
        var include_usage: Bool
    }

    /// `nil` fields are left out of the body (the synthesised `encodeIfPresent`).
    struct Request: Encodable {
        var model: String
        var messages: [Message]
        var temperature: Double?
        var max_tokens: Int?
        var seed: Int?
        var reasoning_effort: String?
        var stream: Bool?
        var stream_options: StreamOptions?
        var response_format: ResponseFormat?
    }

    /// `response_format`: `json_schema` with `json_schema`, or `json_object` with `schema`.
    struct ResponseFormat: Encodable {
        struct Schema: Encodable {
            var name: String
            var schema: JSON
            var strict: Bool
        }
        var type: String
        var json_schema: Schema?
        var schema: JSON?
    }

    /// Any JSON value, to pass a schema through as it was written.
    enum JSON: Codable {
        case object([String: JSON]), array([JSON]), string(String), integer(Int), number(Double), bool(Bool), null

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null }
            else if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Int.self) { self = .integer(value) }
            else if let value = try? container.decode(Double.self) { self = .number(value) }
            else if let value = try? container.decode(String.self) { self = .string(value) }
            else if let value = try? container.decode([JSON].self) { self = .array(value) }
            else { self = .object(try container.decode([String: JSON].self)) }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .object(let value): try container.encode(value)
            case .array(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            case .integer(let value): try container.encode(value)
            case .number(let value): try container.encode(value)
            case .bool(let value): try container.encode(value)
            case .null: try container.encodeNil()
            }
        }
    }

    struct Usage: Decodable {
        struct Details: Decodable {
            var cached_tokens: Int?
        }
        var prompt_tokens: Int?
        var completion_tokens: Int?
        var prompt_tokens_details: Details?

        var tokenUsage: TokenUsage {
            TokenUsage(inputTokens: prompt_tokens ?? 0, outputTokens: completion_tokens ?? 0, cachedInputTokens: prompt_tokens_details?.cached_tokens ?? 0)
        }
    }

    /// Message content: a string; anything else (null, a list of parts) reads as no text.
    struct Text: Decodable {
        var text: String?

        init(from decoder: any Decoder) throws {
            text = try? decoder.singleValueContainer().decode(String.self)
        }
    }

    struct Completion: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable {
                var content: Text?
            }
            var message: Message?
        }
        var choices: [Choice]
        var usage: Usage?
    }

    struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable {
                var content: Text?
            }
            var delta: Delta?
        }
        var choices: [Choice]?
        var usage: Usage?
    }
}
