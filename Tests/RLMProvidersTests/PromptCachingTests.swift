import Foundation
import RLM
import RLMProviders
import RLMTestServers
import Synchronization
import Testing

/// Prompt caching: the root's conversation only grows, Anthropic requests mark it for the cache,
/// and cached tokens are counted and priced.
@Suite("Prompt caching")
struct PromptCachingTests {
    /// What the server saw: each request, and what it read from and wrote to the cache.
    final class Log: Sendable {
        let entries = Mutex<[(request: ModelServers.ChatRequest, read: Int, write: Int, reply: String)]>([])
    }

    static let turns = [
        "```repl\nprint(len(context))\n```",
        "```repl\nx = context.upper()\nprint(x[:5])\n```",
        "```repl\nanswer['content'] = x[:5]\nanswer['ready'] = True\n```",
    ]

    static func server(_ log: Log) async throws -> ScriptedHTTPServer {
        let cache = PromptCache()
        return try await ScriptedHTTPServer.start { http in
            guard http.path == "/v1/messages", let request = ModelServers.decode(http) else { return .respond(status: 404, body: Data()) }
            let turn = request.messages.count(where: { $0.role == "assistant" })
            let reply = Self.turns[min(turn, Self.turns.count - 1)]
            let used = cache.use(request)
            log.entries.withLock { $0.append((request, used.read, used.write, reply)) }
            return .respond(status: 200, body: ModelServers.anthropicBody(text: reply, request: request, cache: used))
        }
    }

    static let price = ModelPrice(inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3, cacheWritePerMillion: 3.75)

    @Test("an RLM's turns over Anthropic read the whole previous conversation from the prompt cache, and pay the cached price for it")
    func anthropicTurnsHitTheCache() async throws {
        let log = Log()
        let server = try await Self.server(log)
        let root = try AnthropicModel(configuration: .init(baseURL: server.baseURL, model: "claude-test", retry: ProviderTests.fast))
        // The loop's turns are under test: `claude-` models have a known window, and a context this
        // small would otherwise go direct.
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, budget: Budget(prices: ["claude-test": Self.price]), strategy: .rlm))
            .complete(query: "shout it", context: .text("hello world"))
        #expect(result.answer == "HELLO")
        let entries = log.entries.withLock { $0 }
        try #require(entries.count == 3)
        for (index, entry) in entries.enumerated() {
            // The system prompt and the newest message carry the marks.
            #expect(entry.request.cacheMarks == [0, entry.request.messages.count - 1], "request \(index)")
            if index == 0 {
                #expect(entry.read == 0)
            } else {
                // Everything the previous request sent is read back: the engine changed no byte of it.
                let previous = entries[index - 1].request.messages.reduce(0) { $0 + ModelServers.tokens($1.content) }
                #expect(entry.read == previous, "request \(index)")
            }
        }
        let read = entries.reduce(0) { $0 + $1.read }
        let written = entries.reduce(0) { $0 + $1.write }
        #expect(read > 0 && written > 0)
        #expect(result.usage.total.tokens.cachedInputTokens == read)
        #expect(result.usage.total.tokens.cacheWriteInputTokens == written)
        let expectedCost = entries.reduce(0.0) { total, entry in
            let input = entry.request.messages.reduce(0) { $0 + ModelServers.tokens($1.content) }
            let output = ModelServers.tokens(entry.reply)
            return total + (Double(input - entry.read - entry.write) * 3 + Double(entry.read) * 0.3
                + Double(entry.write) * 3.75 + Double(output) * 15) / 1_000_000
        }
        #expect(abs(result.usage.total.costUSD - expectedCost) < 1e-12)
        try await server.shutdown()
    }

    @Test("with promptCaching off, nothing is marked and nothing is read from the cache")
    func cachingOff() async throws {
        let log = Log()
        let server = try await Self.server(log)
        var configuration = AnthropicModel.Configuration(baseURL: server.baseURL, model: "claude-test", retry: ProviderTests.fast)
        configuration.promptCaching = false
        let result = try await RLM(configuration: RLMConfiguration(rootModel: try AnthropicModel(configuration: configuration), strategy: .rlm))
            .complete(query: "shout it", context: .text("hello world"))
        #expect(result.answer == "HELLO")
        #expect(log.entries.withLock { $0.allSatisfy { $0.request.cacheMarks.isEmpty && $0.read == 0 } })
        #expect(result.usage.total.tokens.cachedInputTokens == 0)
        try await server.shutdown()
    }

    @Test("OpenAI-compatible cached tokens are counted and priced at the cached price")
    func openAICachedTokens() async throws {
        let server = try await ScriptedHTTPServer.start { http in
            guard let request = ModelServers.decode(http) else { return .respond(status: 404, body: Data()) }
            return .respond(status: 200, body: ModelServers.openAIBody(text: "FINAL(done)", request: request, cachedTokens: 8))
        }
        let root = try OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "gpt-test", apiKeyVariable: nil, retry: ProviderTests.fast))
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, budget: Budget(prices: ["gpt-test": Self.price])))
            .complete(query: "q", context: .text("c"))
        #expect(result.answer == "done")
        let tokens = result.usage.total.tokens
        #expect(tokens.cachedInputTokens == 8)
        let expected = (Double(tokens.inputTokens - 8) * 3 + 8 * 0.3 + Double(tokens.outputTokens) * 15) / 1_000_000
        #expect(abs(result.usage.total.costUSD - expected) < 1e-12)
        try await server.shutdown()
    }

    @Test("a TokenUsage or ModelPrice saved before the cache fields existed still decodes")
    func oldRecordsDecode() throws {
        let usage = try JSONDecoder().decode(TokenUsage.self, from: Data(#"{"inputTokens":5,"outputTokens":2,"cachedInputTokens":1}"#.utf8))
        #expect(usage == TokenUsage(inputTokens: 5, outputTokens: 2, cachedInputTokens: 1))
        let price = try JSONDecoder().decode(ModelPrice.self, from: Data(#"{"inputPerMillion":1,"outputPerMillion":2}"#.utf8))
        #expect(price == ModelPrice(inputPerMillion: 1, outputPerMillion: 2))
        #expect(price.cacheWritePerMillion == 1 && price.cachedInputPerMillion == 1)
    }
}
