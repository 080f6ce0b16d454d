import Foundation
import Synchronization

/// Fake model APIs on a ``ScriptedHTTPServer``: an OpenAI-compatible `/v1/chat/completions`
/// and an Anthropic-compatible `/v1/messages`, with token usage in their real shapes.
public enum ModelServers {
    /// A chat request as the fake server decoded it.
    public struct ChatRequest: Sendable {
        /// The model named in the request.
        public var model: String
        /// `(role, content)` pairs, including Anthropic's top-level `system`.
        public var messages: [(role: String, content: String)]
        /// The HTTP request.
        public var http: ScriptedHTTPServer.Request
        /// Whether the client asked for server-sent events (`"stream": true`).
        public var stream: Bool
        /// Indices in ``messages`` whose content carried a `cache_control` block (Anthropic).
        public var cacheMarks: [Int] = []
        /// The last user message.
        public var prompt: String { messages.last(where: { $0.role == "user" })?.content ?? "" }
    }

    /// Tokens a fake reply reports: one per four characters, rounded up.
    public static func tokens(_ text: String) -> Int { (text.count + 3) / 4 }

    /// Decodes a chat request body (either API's shape).
    public static func decode(_ request: ScriptedHTTPServer.Request) -> ChatRequest? {
        guard let wire = try? JSONDecoder().decode(WireRequest.self, from: request.body) else { return nil }
        var messages: [(String, String)] = []
        var marks: [Int] = []
        if let system = wire.system, let text = system.text {
            if system.cacheMarked { marks.append(messages.count) }
            messages.append(("system", text))
        }
        for message in wire.messages ?? [] {
            if let content = message.content, let text = content.text {
                if content.cacheMarked { marks.append(messages.count) }
                messages.append((message.role ?? "", text))
            }
        }
        var chat = ChatRequest(model: wire.model ?? "", messages: messages, http: request, stream: wire.stream ?? false)
        chat.cacheMarks = marks
        return chat
    }

    /// An OpenAI Chat Completions response body.
    public static func openAIBody(text: String, request: ChatRequest, cachedTokens: Int = 0) -> Data {
        let input = request.messages.reduce(0) { $0 + tokens($1.content) }
        let body = WireCompletion(
            id: "chatcmpl-\(request.http.index)", model: request.model,
            choices: [.init(message: .init(content: text))],
            usage: .init(prompt_tokens: input, completion_tokens: tokens(text), total_tokens: input + tokens(text), prompt_tokens_details: .init(cached_tokens: cachedTokens)))
        return (try? JSONEncoder().encode(body)) ?? Data()
    }

    /// An OpenAI streaming body: one `chat.completion.chunk` event per piece of `text` (split
    /// every `pieceLength` characters), a usage chunk, and `[DONE]`.
    public static func openAIStreamBody(text: String, request: ChatRequest, pieceLength: Int = 3) -> Data {
        var events: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            let piece = rest.prefix(pieceLength)
            rest = rest.dropFirst(pieceLength)
            let chunk: [String: Any] = ["object": "chat.completion.chunk", "choices": [["index": 0, "delta": ["content": String(piece)]]]]
            events.append(String(decoding: (try? JSONSerialization.data(withJSONObject: chunk)) ?? Data(), as: UTF8.self))
        }
        let input = request.messages.reduce(0) { $0 + tokens($1.content) }
        let usage: [String: Any] = ["object": "chat.completion.chunk", "choices": [], "usage": ["prompt_tokens": input, "completion_tokens": tokens(text)]]
        events.append(String(decoding: (try? JSONSerialization.data(withJSONObject: usage)) ?? Data(), as: UTF8.self))
        events.append("[DONE]")
        return Data(events.map { "data: \($0)\r\n\r\n" }.joined().utf8)
    }

    /// An Anthropic Messages response body, with a thinking block before the text; `cache` is
    /// the part of the prompt read from and written to the prompt cache (``PromptCache``).
    public static func anthropicBody(text: String, request: ChatRequest, cache: (read: Int, write: Int) = (0, 0)) -> Data {
        let input = request.messages.reduce(0) { $0 + tokens($1.content) } - cache.read - cache.write
        let object: [String: Any] = [
            "id": "msg_\(request.http.index)", "type": "message", "role": "assistant", "model": request.model,
            "content": [
                ["type": "thinking", "thinking": "(private reasoning that must not appear)", "signature": "x"],
                ["type": "text", "text": text],
            ],
            "stop_reason": "end_turn",
            "usage": [
                "input_tokens": input, "output_tokens": tokens(text),
                "cache_read_input_tokens": cache.read, "cache_creation_input_tokens": cache.write,
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
    }

    /// An OpenAI-compatible server whose replies come from `reply`, after `latency`. Its model
    /// list (`GET …/models`) reports `contextWindows` as vLLM does (`max_model_len`).
    public static func openAI(
        latency: Duration = .zero, contextWindows: [String: Int] = [:], reply: @escaping @Sendable (ChatRequest) async -> String
    ) async throws -> ScriptedHTTPServer {
        try await ScriptedHTTPServer.start { http in
            if http.method == "GET" && http.path.hasSuffix("/models") {
                let entries = contextWindows.sorted { $0.key < $1.key }.map { ["id": $0.key, "object": "model", "max_model_len": $0.value] as [String: Any] }
                return .respond(status: 200, body: (try? JSONSerialization.data(withJSONObject: ["object": "list", "data": entries])) ?? Data())
            }
            guard let request = chatRequest(http) else { return notFound }
            return respond(text: await reply(request), to: request, latency: latency)
        }
    }

    /// An OpenAI-compatible server that answers on its event loop (see
    /// ``ScriptedHTTPServer/start(port:synchronousHandler:)``), for benchmarks.
    public static func openAI(port: Int = 0, latency: @escaping @Sendable (ChatRequest) -> Duration, synchronousReply reply: @escaping @Sendable (ChatRequest) -> String) async throws -> ScriptedHTTPServer {
        try await ScriptedHTTPServer.start(port: port) { http in
            guard let request = chatRequest(http) else { return notFound }
            return respond(text: reply(request), to: request, latency: latency(request))
        }
    }

    private static func chatRequest(_ http: ScriptedHTTPServer.Request) -> ChatRequest? {
        http.path.hasSuffix("/chat/completions") ? decode(http) : nil
    }

    private static let notFound = ScriptedHTTPServer.Action.respond(status: 404, body: Data(#"{"error":{"message":"not found"}}"#.utf8))

    private static func respond(text: String, to request: ChatRequest, latency: Duration) -> ScriptedHTTPServer.Action {
        if request.stream {
            return .respond(status: 200, headers: ["content-type": "text/event-stream"], body: openAIStreamBody(text: text, request: request), delay: latency)
        }
        return .respond(status: 200, body: openAIBody(text: text, request: request), delay: latency)
    }
}

/// Anthropic's prompt cache, played by a test server: a request reads the longest prefix of its
/// messages that an earlier request marked (`cache_control`) byte for byte, and writes the rest up
/// to its own last mark. A prefix that changes by one byte is a miss, as with the real cache.
public final class PromptCache: Sendable {
    private let prefixes = Mutex<Set<String>>([])

    public init() {}

    /// The tokens of `request`'s prompt read from and written to the cache, and the request's
    /// marked prefixes remembered for later requests.
    public func use(_ request: ModelServers.ChatRequest) -> (read: Int, write: Int) {
        guard let lastMark = request.cacheMarks.max() else { return (0, 0) }
        var keys: [String] = []
        var tokens: [Int] = []
        var key = ""
        var total = 0
        for message in request.messages[...lastMark] {
            key += "\u{1}\(message.role)\u{2}\(message.content)"
            total += ModelServers.tokens(message.content)
            keys.append(key)
            tokens.append(total)
        }
        return prefixes.withLock { cached in
            let hit = keys.indices.last { cached.contains(keys[$0]) }
            let read = hit.map { tokens[$0] } ?? 0
            for mark in request.cacheMarks { cached.insert(keys[mark]) }
            return (read, tokens[lastMark] - read)
        }
    }
}

// The wire shapes, decoded and encoded with Codable: JSONSerialization costs ~25 µs per small
// body on Linux, which would dominate a benchmark server's own cost per request.

private struct WireRequest: Decodable {
    var model: String?
    var system: WireContent?
    var messages: [WireMessage]?
    var stream: Bool?
}

private struct WireMessage: Decodable {
    var role: String?
    var content: WireContent?
}

/// A message's content: a string, or (Anthropic) a list of blocks whose texts are joined.
private struct WireContent: Decodable {
    var text: String?
    /// Whether a block carried `cache_control`.
    var cacheMarked = false

    private struct Block: Decodable {
        struct CacheControl: Decodable { var type: String? }
        var text: String?
        var cache_control: CacheControl?
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self.text = text
        } else if let blocks = try? container.decode([Block].self) {
            text = blocks.compactMap(\.text).joined()
            cacheMarked = blocks.contains { $0.cache_control != nil }
        }
    }
}

private struct WireCompletion: Encodable {
    struct Choice: Encodable {
        struct Message: Encodable {
            var role = "assistant"
            var content: String
        }
        var index = 0
        var message: Message
        var finish_reason = "stop"
    }
    struct Usage: Encodable {
        struct Details: Encodable {
            var cached_tokens: Int
        }
        var prompt_tokens: Int
        var completion_tokens: Int
        var total_tokens: Int
        var prompt_tokens_details: Details
    }
    var id: String
    var object = "chat.completion"
    var model: String
    var choices: [Choice]
    var usage: Usage
}
