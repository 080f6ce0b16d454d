import RLM
import RLMTesting
import Synchronization
import Testing

@Suite("Context windows")
struct ContextWindowTests {
    @Test("an llm_query that cannot fit returns a message saying so, without calling the model")
    func subcallTooLong() async throws {
        let sub = ScriptedModel(name: "sub", contextWindow: ContextWindow(tokens: 1_000)) { request in "short: \(request.prompt.count)" }
        let root = ScriptedModel.sequence([
            repl("""
                whole = llm_query(context)
                parts = llm_query_batched([context[:2000], context])
                print(whole)
                print(parts[0])
                print(parts[1][:60])
                """),
            "FINAL(done)",
        ], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub))
        let result = try await rlm.complete(query: "q", context: .text(String(repeating: "word ", count: 4_000)))
        #expect(result.answer == "done")
        #expect(sub.callCount == 1, "only the piece that fits reaches the model")
        #expect(sub.requests.first?.prompt.count == 2_000)
        let output = cellOutputs(result).first ?? ""
        #expect(output.contains("[error] this prompt is too long for the model 'sub': it is about 5004 tokens (20000 characters) and the context window holds 1000 tokens."), "\(output)")
        #expect(output.contains("Split it into about 11 pieces of at most 1818 characters and call llm_query_batched on them"), "\(output)")
        #expect(output.contains("The model was not called."))
        #expect(output.contains("short: 2000"))
        // The refused calls are visible in the events, and cost nothing.
        let refused = result.events.filter {
            if case .subcallFinished(_, _, _, _, _, let error?) = $0.kind { return error.contains("does not fit") }
            return false
        }
        #expect(refused.count == 2)
        #expect(result.usage.byModel["sub"]?.calls == 1)
    }

    /// A model whose server refuses prompts above `limit` estimated tokens, as real servers do.
    struct RefusingModel: LanguageModel {
        let name: String
        let limit: Int
        let window: ContextWindow?
        let inner: ScriptedModel
        var modelName: String { name }
        var contextWindow: ContextWindow? { window }
        func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
            let tokens = TokenEstimate.tokens(in: messages)
            if tokens > limit {
                throw ContextWindowExceeded(model: name, promptTokens: tokens, windowTokens: limit, serverMessage: "Requested tokens (\(tokens)) exceed context window of \(limit)")
            }
            return try await inner.complete(messages)
        }
    }

    @Test("a sub-call the server refuses as too long returns the same kind of message and the run goes on")
    func subcallRefusedByServer() async throws {
        let sub = RefusingModel(name: "sub", limit: 500, window: nil, inner: ScriptedModel { _ in "ok" })
        let root = ScriptedModel.sequence([repl("print(llm_query(context))"), "FINAL(done)"], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub))
        let result = try await rlm.complete(query: "q", context: .text(String(repeating: "x", count: 8_000)))
        #expect(result.answer == "done")
        let output = cellOutputs(result).first ?? ""
        #expect(output.contains("[error] this prompt is too long for the model 'sub': it is about 2004 tokens (8000 characters) and the context window holds 500 tokens."), "\(output)")
        #expect(output.contains("The server refused it."))
    }

    @Test("the root's conversation is compacted before it outgrows the window; the latest turn and the query stay")
    func rootCompaction() async throws {
        let window = ContextWindow(tokens: 4_000, reservedForReply: 500)
        let root = ScriptedModel(name: "root", contextWindow: window) { request in
            request.index < 12
                ? repl("print('turn \(request.index) ' + 'y' * 2000)\nanswer['content'] = 'draft \(request.index)'")
                : "FINAL(finished)"
        }
        // The loop's compaction is under test: a context this small would otherwise go direct.
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, strategy: .rlm))
        let result = try await rlm.complete(query: "find the needle", context: .text("c"))
        #expect(result.answer == "finished")
        for request in root.requests {
            #expect(TokenEstimate.tokens(in: request.messages) <= window.promptTokens)
            #expect(request.messages.first?.role == .system)
            #expect(request.messages[1].content.contains("find the needle"))
            // Roles alternate after the first user message.
            for (earlier, later) in zip(request.messages.dropFirst(), request.messages.dropFirst(2)) {
                #expect(earlier.role != later.role)
            }
        }
        let last = try #require(root.requests.last)
        #expect(last.messages[1].content.contains("SHOW_VARS() lists them"))
        #expect(last.messages.last?.content.contains("turn 11 ") == true, "the latest output is kept")
        #expect(!last.messages.contains { $0.content.contains("turn 0 ") }, "the oldest output is left out")
        let compactions = result.events.filter { if case .historyCompacted = $0.kind { true } else { false } }
        // Compaction goes well below the trigger, so it happens now and then, not every turn.
        #expect(compactions.count >= 1 && compactions.count <= 5, "\(compactions.count) compactions")
    }

    @Test("when the server refuses the root's conversation, more is left out and the turn is tried again")
    func rootRefusedByServer() async throws {
        let inner = ScriptedModel(name: "root") { request in
            // Each turn prints something new: a repeated turn would be shown once (RLMLoop).
            request.index < 6 ? repl("print('z' * 3000, \(request.index))") : "FINAL(made it)"
        }
        // No window is known; the server refuses above 2,500 estimated tokens.
        let root = RefusingModel(name: "root", limit: 2_500, window: nil, inner: inner)
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root))
        let result = try await rlm.complete(query: "q", context: .text("c"))
        #expect(result.answer == "made it")
        #expect(result.events.contains { if case .historyCompacted = $0.kind { true } else { false } })

        // A first message that alone cannot fit is a clear failure, with the refusal as its cause.
        let tiny = RefusingModel(name: "root", limit: 10, window: nil, inner: ScriptedModel { _ in "FINAL(x)" })
        do {
            _ = try await RLM(configuration: RLMConfiguration(rootModel: tiny)).complete(query: "q", context: .text("c"))
            Issue.record("expected a failure")
        } catch let error as RLMError {
            #expect(error.code == .modelFailed)
            #expect(error.message.contains("nothing more can be left out"))
            #expect(error.cause is ContextWindowExceeded)
        }
    }

    @Test("token estimates and published windows")
    func estimates() {
        #expect(TokenEstimate.tokens(in: "abcd") == 1)
        #expect(TokenEstimate.tokens(in: "abcde") == 2)
        #expect(TokenEstimate.tokens(in: "안녕하세요") == 5)
        #expect(TokenEstimate.tokens(in: "日本語 ok") == 3 + 1)
        #expect(TokenEstimate.tokens(in: "🙂🙂") == 2)
        #expect(TokenEstimate.tokens(in: [.user("abcd"), .assistant("")]) == 1 + 8)
        #expect(ContextWindow.known(forModel: "gpt-4o-mini-2024-07-18")?.tokens == 128_000)
        #expect(ContextWindow.known(forModel: "openai/GPT-4.1-mini")?.tokens == 1_047_576)
        #expect(ContextWindow.known(forModel: "claude-sonnet-4-5")?.tokens == 200_000)
        #expect(ContextWindow.known(forModel: "Qwen2.5-Coder-1.5B-Instruct")?.tokens == 32_768)
        #expect(ContextWindow.known(forModel: "my-finetune") == nil)
        #expect(ContextWindow(tokens: 8_192).promptTokens == 7_168)
        #expect(ContextWindow(tokens: 1_000_000).reservedForReply == 8_192)
    }
}

@Suite("Batched prompts in waves")
struct BatchWaveTests {
    @Test("batched prompts cross into Swift in waves of at most 8 M characters, results in order")
    func waves() async throws {
        let sub = ScriptedModel(name: "sub", latency: .milliseconds(20)) { request in "\(request.prompt.first ?? "?")\(request.prompt.count)" }
        let root = ScriptedModel.sequence([
            repl("""
                big = llm_query_batched(['a' * 5_000_000, 'b' * 5_000_000, 'c' * 5_000_000])
                small = llm_query_batched(['x', 'y'])
                print(big, small)
                """),
            "FINAL(done)",
        ], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxConcurrentSubcalls: 16))
        let result = try await rlm.complete(query: "q", context: .text("c"))
        #expect(cellOutputs(result).first?.contains("['a5000000', 'b5000000', 'c5000000'] ['x1', 'y1']") == true, "\(cellOutputs(result))")
        // The three large prompts went one wave each (else three would have been in flight);
        // the small ones together.
        #expect(sub.peakConcurrency == 2)
        let order = sub.requests.prefix(3).map { $0.prompt.first }
        #expect(order == ["a", "b", "c"])
    }
}
