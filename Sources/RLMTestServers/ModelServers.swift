import Foundation

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
        /// The last user message.
        public var prompt: String { messages.last(where: { $0.role == "user" })?.content ?? "" }
    }

    /// Tokens a fake reply reports: one per four characters, rounded up.
    public static func tokens(_ text: String) -> Int { (text.count + 3) / 4 }

    /// Decodes a chat request body (either API's shape).
    public static func decode(_ request: ScriptedHTTPServer.Request) -> ChatRequest? {
        guard let object = try? JSONSerialization.jsonObject(with: request.body) as? [String: Any] else { return nil }
        var messages: [(String, String)] = []
        if let system = object["system"] as? String { messages.append(("system", system)) }
        for message in object["messages"] as? [[String: Any]] ?? [] {
            let role = message["role"] as? String ?? ""
            if let text = message["content"] as? String {
                messages.append((role, text))
            } else if let blocks = message["content"] as? [[String: Any]] {
                messages.append((role, blocks.compactMap { $0["text"] as? String }.joined()))
            }
        }
        return ChatRequest(model: object["model"] as? String ?? "", messages: messages, http: request, stream: object["stream"] as? Bool ?? false)
    }

    /// An OpenAI Chat Completions response body.
    public static func openAIBody(text: String, request: ChatRequest, cachedTokens: Int = 0) -> Data {
        let input = request.messages.reduce(0) { $0 + tokens($1.content) }
        let object: [String: Any] = [
            "id": "chatcmpl-\(request.http.index)", "object": "chat.completion", "model": request.model,
            "choices": [["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop"]],
            "usage": [
                "prompt_tokens": input, "completion_tokens": tokens(text), "total_tokens": input + tokens(text),
                "prompt_tokens_details": ["cached_tokens": cachedTokens],
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
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

    /// An Anthropic Messages response body, with a thinking block before the text.
    public static func anthropicBody(text: String, request: ChatRequest) -> Data {
        let input = request.messages.reduce(0) { $0 + tokens($1.content) }
        let object: [String: Any] = [
            "id": "msg_\(request.http.index)", "type": "message", "role": "assistant", "model": request.model,
            "content": [
                ["type": "thinking", "thinking": "(private reasoning that must not appear)", "signature": "x"],
                ["type": "text", "text": text],
            ],
            "stop_reason": "end_turn",
            "usage": ["input_tokens": input, "output_tokens": tokens(text), "cache_read_input_tokens": 0],
        ]
        return (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
    }

    /// An OpenAI-compatible server whose replies come from `reply`, after `latency`.
    public static func openAI(latency: Duration = .zero, reply: @escaping @Sendable (ChatRequest) async -> String) async throws -> ScriptedHTTPServer {
        try await ScriptedHTTPServer.start { http in
            guard http.path.hasSuffix("/chat/completions"), let request = decode(http) else {
                return .respond(status: 404, body: Data(#"{"error":{"message":"not found"}}"#.utf8))
            }
            let text = await reply(request)
            if request.stream {
                return .respond(status: 200, headers: ["content-type": "text/event-stream"], body: openAIStreamBody(text: text, request: request), delay: latency)
            }
            return .respond(status: 200, body: openAIBody(text: text, request: request), delay: latency)
        }
    }
}
