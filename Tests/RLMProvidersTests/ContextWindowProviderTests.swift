import Foundation
import RLM
import RLMProviders
import RLMTestServers
import Testing

/// Servers refuse prompts that do not fit in their own words; the providers recognise each and
/// report ``ContextWindowExceeded`` with the numbers the server gave.
@Suite("Context windows at real local servers")
struct ContextWindowProviderTests {
    func model(_ server: ScriptedHTTPServer, window: ContextWindow? = nil) throws -> OpenAICompatibleModel {
        var configuration = OpenAICompatibleModel.Configuration(
            baseURL: server.baseURL + "/v1", model: "test-model", apiKeyVariable: nil, retry: .none)
        configuration.contextWindow = window
        return try OpenAICompatibleModel(configuration: configuration)
    }

    @Test(
        "a server's refusal of a long prompt is a ContextWindowExceeded with its numbers",
        arguments: [
            // OpenAI
            (#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#, 130_512, 128_000),
            // llama-cpp-python
            (#"{"error":{"message":"Requested tokens (9000) exceed context window of 8192","type":"internal_server_error","param":null,"code":null}}"#, 9_000, 8_192),
            // llama.cpp's llama-server
            (#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#, 5_000, 4_096),
            // vLLM
            (#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#, 5_000, 4_096),
            // Anthropic's wording, through a gateway
            (#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#, 210_000, 200_000),
        ])
    func refusals(body: String, prompt: Int, window: Int) async throws {
        let server = try await ScriptedHTTPServer.start { _ in .respond(status: 400, body: Data(body.utf8)) }
        do {
            _ = try await model(server).complete([.user("a long prompt")])
            Issue.record("expected a refusal")
        } catch let refusal as ContextWindowExceeded {
            #expect(refusal.model == "test-model")
            #expect(refusal.promptTokens == prompt)
            #expect(refusal.windowTokens == window)
            #expect(refusal.serverMessage?.isEmpty == false)
        }
        try await server.shutdown()
    }

    @Test("other 400s stay ProviderErrors")
    func otherBadRequests() async throws {
        let server = try await ScriptedHTTPServer.start { _ in
            .respond(status: 400, body: Data(#"{"error":{"message":"temperature must be at most 2","code":"invalid_value"}}"#.utf8))
        }
        await #expect(throws: ProviderError.self) { try await model(server).complete([.user("hi")]) }
        try await server.shutdown()
    }

    @Test("the window comes from the configuration, the server's model list, or the published table")
    func windows() async throws {
        let server = try await ScriptedHTTPServer.start { http in
            guard http.method == "GET", http.path == "/v1/models" else { return .respond(status: 404, body: Data()) }
            return .respond(status: 200, body: Data(#"""
                {"object":"list","data":[{"id":"other","object":"model","max_model_len":1024},
                {"id":"test-model","object":"model","owned_by":"vllm","max_model_len":32768}]}
                """#.utf8))
        }
        #expect(try await model(server).discoverContextWindow()?.tokens == 32_768)
        #expect(try model(server, window: ContextWindow(tokens: 4_096)).contextWindow?.tokens == 4_096)
        #expect(try model(server).contextWindow == nil)
        let gpt = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "gpt-4o-mini", apiKeyVariable: nil))
        #expect(gpt.contextWindow?.tokens == 128_000)
        try await server.shutdown()

        let llamaServer = try await ScriptedHTTPServer.start { _ in
            .respond(status: 200, body: Data(#"{"object":"list","data":[{"id":"model.gguf","object":"model","meta":{"n_ctx_train":32768,"n_ctx":8192}}]}"#.utf8))
        }
        // One model served under another name: the only entry is it.
        #expect(try await model(llamaServer).discoverContextWindow()?.tokens == 8_192)
        try await llamaServer.shutdown()

        let openAI = try await ScriptedHTTPServer.start { _ in
            .respond(status: 200, body: Data(#"{"object":"list","data":[{"id":"test-model","object":"model","owned_by":"openai"}]}"#.utf8))
        }
        #expect(try await model(openAI).discoverContextWindow() == nil)
        try await openAI.shutdown()
    }
}
