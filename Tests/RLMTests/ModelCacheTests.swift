import Foundation
import RLM
import RLMTesting
import Testing

@Suite("The model reply cache")
struct ModelCacheTests {
    /// A root that splits the context and asks the sub-model about each piece.
    static func rootScript() -> ScriptedModel {
        ScriptedModel.sequence([
            repl("parts = llm_query_batched([f'shout {w}' for w in context.split()])\nprint(parts)"),
            repl("answer['content'] = '-'.join(parts); answer['ready'] = True"),
        ], name: "root")
    }

    @Test("the same run twice: the second makes no sub-call, answers the same, and says what it saved")
    func sameRunTwice() async throws {
        let storage = MemoryModelCacheStorage()
        let sub = ScriptedModel(name: "sub") { $0.prompt.uppercased() }
        var configuration = RLMConfiguration(rootModel: Self.rootScript(), subModel: sub)
        configuration.cache = ModelCache(storage: storage)
        configuration.budget.prices = ["sub": ModelPrice(inputPerMillion: 1, outputPerMillion: 2)]
        let first = try await RLM(configuration: configuration).complete(query: "q", context: .text("alpha beta gamma"))
        #expect(first.answer == "SHOUT ALPHA-SHOUT BETA-SHOUT GAMMA")
        #expect(sub.callCount == 3)
        #expect(first.usage.total.cacheMisses == 3)
        #expect(first.usage.total.cacheHits == 0)

        configuration.rootModel = Self.rootScript()
        let second = try await RLM(configuration: configuration).complete(query: "q", context: .text("alpha beta gamma"))
        #expect(second.answer == first.answer)
        #expect(sub.callCount == 3, "the second run called the sub-model")
        let byModel = try #require(second.usage.byModel["sub"])
        #expect(byModel.calls == 0)
        #expect(byModel.cacheHits == 3)
        #expect(byModel.savedTokens == first.usage.byModel["sub"]?.tokens)
        #expect(byModel.savedCostUSD > 0)
        #expect(byModel.tokens.totalTokens == 0)
        let cachedEvents = second.events.filter { if case .subcallCached = $0.kind { true } else { false } }
        #expect(cachedEvents.count == 3)
    }

    @Test("failed calls are never cached, and neither are sampled replies unless the cache is told to")
    func whatIsNotCached() async throws {
        struct Sampled: LanguageModel {
            let inner: ScriptedModel
            var modelName: String { "sub" }
            var cacheIdentity: CacheIdentity { CacheIdentity(settings: "temperature=0.8", isSampled: true) }
            func complete(_ messages: [ChatMessage]) async throws -> ModelResponse { try await inner.complete(messages) }
        }
        let inner = ScriptedModel(name: "sub") { $0.prompt.uppercased() }
        var configuration = RLMConfiguration(rootModel: Self.rootScript(), subModel: Sampled(inner: inner))
        configuration.cache = ModelCache(storage: MemoryModelCacheStorage())
        for _ in 0..<2 {
            configuration.rootModel = Self.rootScript()
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text("one two"))
        }
        #expect(inner.callCount == 4)
        configuration.cache?.cachesSampledReplies = true
        for _ in 0..<2 {
            configuration.rootModel = Self.rootScript()
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text("one two"))
        }
        #expect(inner.callCount == 6)

        let failing = ScriptedModel(name: "sub") { request in
            if request.index == 0 { throw URLError(.timedOut) }
            return request.prompt.uppercased()
        }
        let storage = MemoryModelCacheStorage()
        configuration = RLMConfiguration(rootModel: ScriptedModel.sequence([
            repl("try:\n    print(llm_query('x'))\nexcept Exception as e:\n    print('failed')"),
            repl("print(llm_query('x'))\nanswer['content'] = 'done'; answer['ready'] = True"),
        ]), subModel: failing)
        configuration.cache = ModelCache(storage: storage)
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("t"))
        #expect(result.answer == "done")
        #expect(failing.callCount == 2, "the failure was served from the cache")
        #expect(storage.count.entries == 1)
    }

    @Test("root turns come from the cache when it includes them: a replayed conversation needs no model")
    func rootTurns() async throws {
        let storage = MemoryModelCacheStorage()
        var configuration = RLMConfiguration(rootModel: Self.rootScript(), subModel: ScriptedModel(name: "sub") { $0.prompt })
        configuration.cache = ModelCache(storage: storage, includesRootTurns: true)
        let first = try await RLM(configuration: configuration).complete(query: "q", context: .text("a b"))
        // A model with no replies at all: every turn must come from the cache.
        configuration.rootModel = ScriptedModel.sequence([], name: "root")
        let second = try await RLM(configuration: configuration).complete(query: "q", context: .text("a b"))
        #expect(second.answer == first.answer)
        #expect(second.usage.total.calls == 0)
        #expect(second.usage.byModel["root"]?.cacheHits == 2)
    }

    @Test("memory storage stays within its bytes, dropping the least recently used first")
    func boundedMemory() async throws {
        let storage = MemoryModelCacheStorage(maxBytes: 10_000)
        func key(_ i: Int) -> ModelCallKey { ModelCallKey(model: "m", settings: "", messages: [.user("prompt \(i) " + String(repeating: "x", count: 900))]) }
        for i in 0..<8 { try await storage.store(ModelResponse(text: "reply \(i)"), for: key(i)) }
        _ = try await storage.reply(for: key(0))  // recently used: kept
        for i in 8..<20 { try await storage.store(ModelResponse(text: "reply \(i)"), for: key(i)) }
        #expect(storage.count.bytes <= 10_000)
        #expect(try await storage.reply(for: key(19))?.text == "reply 19")
        #expect(try await storage.reply(for: key(1)) == nil)
        #expect(key(3).digest == key(3).digest)
        #expect(key(3).digest != key(4).digest)
        #expect(key(3).digest.count == 32)
    }

    @Test("usage written before the cache existed still decodes")
    func oldUsageDecodes() throws {
        let old = #"{"calls": 2, "tokens": {"inputTokens": 5, "outputTokens": 1, "cachedInputTokens": 0}, "costUSD": 0.5}"#
        let usage = try JSONDecoder().decode(ModelUsage.self, from: Data(old.utf8))
        #expect(usage.calls == 2)
        #expect(usage.cacheHits == 0)
        #expect(usage.savedTokens == TokenUsage())
    }
}
