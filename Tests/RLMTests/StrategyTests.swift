import Foundation
import PythonRuntime
import RLM
import RLMTesting
import Testing

/// `Strategy`: one direct call when the whole context fits, the RLM loop otherwise.
@Suite("Strategies: direct, RLM and auto")
struct StrategyTests {
    static let window = ContextWindow(tokens: 8_192)
    static let small = "Line one.\nThe secret code is 48213.\nLine three.\n"

    func strategies(_ result: RLMResult) -> [Strategy] {
        result.events.compactMap { event in
            guard case .strategyChosen(let strategy, _) = event.kind else { return nil }
            return strategy
        }
    }

    @Test("auto answers a context that fits in one call with the whole context, and counts it")
    func autoDirect() async throws {
        let model = ScriptedModel.sequence(["48213"], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model))
            .complete(query: "What is the secret code?", context: .text(Self.small))
        #expect(result.answer == "48213")
        #expect(result.strategy == .direct)
        #expect(result.iterations == 0)
        #expect(model.callCount == 1)
        let prompt = try #require(model.requests.first?.messages.last?.content)
        #expect(prompt.contains("The secret code is 48213.") && prompt.contains("Query: What is the secret code?"))
        #expect(!(model.requests.first?.messages.first?.content.contains("REPL") ?? true))
        #expect(result.usage.total.calls == 1)
        #expect(result.usage.total.tokens == expectedUsage(model))
        #expect(strategies(result) == [.direct])
    }

    @Test("auto takes the loop when the context does not fit in half the window, or the window is unknown")
    func autoLoop() async throws {
        let large = String(repeating: "filler words that pad the context out\n", count: 1_000) // about 9,500 tokens
        let model = ScriptedModel.sequence([repl("FINAL(len(context))")], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: "How long?", context: .text(large))
        #expect(result.answer == "\(large.count)")
        #expect(result.strategy == .rlm)
        #expect(strategies(result) == [.rlm])

        let unknown = ScriptedModel.sequence([repl("FINAL(len(context))")], name: "root")
        let plain = try await RLM(configuration: RLMConfiguration(rootModel: unknown)).complete(query: "How long?", context: .text(Self.small))
        #expect(plain.strategy == .rlm)
        #expect(strategies(plain).isEmpty)
    }

    @Test("auto goes on with the loop when the direct answer is empty or the server refuses the context")
    func autoFallsBack() async throws {
        let empty = ScriptedModel.sequence(["  ", repl("FINAL(context.split()[-3])")], name: "root", contextWindow: Self.window)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: empty)).complete(query: "Which word?", context: .text(Self.small))
        #expect(result.answer == "48213.")
        #expect(result.strategy == .rlm)
        #expect(strategies(result) == [.direct, .rlm])
        #expect(result.usage.total.calls == 2)

        let refusing = ScriptedModel(name: "root", contextWindow: Self.window) { request in
            if request.index == 0 { throw ContextWindowExceeded(model: "root", promptTokens: 9_000, windowTokens: 8_192) }
            return repl("FINAL('from the loop')")
        }
        let refused = try await RLM(configuration: RLMConfiguration(rootModel: refusing)).complete(query: "q", context: .text(Self.small))
        #expect(refused.answer == "from the loop")
        let reasons = refused.events.compactMap { event -> String? in
            guard case .strategyChosen(.rlm, let reason) = event.kind else { return nil }
            return reason
        }
        #expect(reasons.count == 1 && reasons[0].contains("refused"))
    }

    @Test("refinement and tools keep auto on the loop; rlm never calls directly")
    func loopOnly() async throws {
        var configuration = RLMConfiguration(rootModel: ScriptedModel.sequence([repl("FINAL('loop')")], name: "root", contextWindow: Self.window))
        configuration.strategy = .rlm
        #expect(try await RLM(configuration: configuration).complete(query: "q", context: .text(Self.small)).strategy == .rlm)

        var tooled = RLMConfiguration(
            rootModel: ScriptedModel.sequence([repl("FINAL(shout('x'))")], name: "root", contextWindow: Self.window),
            tools: [RLMTool(name: "shout", description: "upper-cases", body: { arguments in .string((arguments.positional.first?.stringValue ?? "").uppercased()) })])
        tooled.strategy = .auto
        let result = try await RLM(configuration: tooled).complete(query: "q", context: .text(Self.small))
        #expect(result.answer == "X")
        #expect(result.strategy == .rlm)
    }

    @Test("direct always makes one call, whatever the window, and refuses a context it cannot read whole")
    func forcedDirect() async throws {
        let model = ScriptedModel.sequence(["FINAL(48213)"], name: "root")
        var configuration = RLMConfiguration(rootModel: model)
        configuration.strategy = .direct
        let result = try await RLM(configuration: configuration).complete(query: "Code?", context: .texts(["a", Self.small]))
        #expect(result.answer == "48213")
        #expect(model.requests.first?.messages.last?.content.contains("[document 2]") == true)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-strategy-\(UUID().uuidString).txt")
        try Data(Self.small.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .mappedFile(file))
            Issue.record("a mapped file cannot go in one call")
        } catch let error as RLMError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("strategy direct"))
        }

        let empty = ScriptedModel.sequence([""], name: "root")
        configuration.rootModel = empty
        do {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text(Self.small))
            Issue.record("an empty direct answer is not an answer")
        } catch let error as RLMError {
            #expect(error.code == .modelFailed)
        }
    }
}
