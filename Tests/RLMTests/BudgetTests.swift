import Foundation
import RLM
import RLMTesting
import Testing

@Suite("Budgets and limits")
struct BudgetTests {
    /// A root script that keeps working: each turn records a draft answer, never submits.
    static func endlessRoot(latency: Duration = .zero, withSubcall: Bool = false) -> ScriptedModel {
        ScriptedModel(name: "root", latency: latency) { request in
            let call = withSubcall ? "llm_query('hi')\n" : ""
            return repl("\(call)answer['content'] = 'draft \(request.index + 1)'")
        }
    }

    func expectLimit(_ limit: Limit, partial: String?, _ run: () async throws -> RLMResult) async {
        do {
            let result = try await run()
            Issue.record("expected the \(limit), got an answer: \(result.answer)")
        } catch let error as RLMError {
            #expect(error.code == .limitReached)
            #expect(error.limit == limit)
            #expect(error.partialAnswer == partial)
            #expect(error.usage != nil)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("the iteration limit ends the run with the last answer['content']")
    func iterations() async {
        let rlm = RLM(configuration: RLMConfiguration(rootModel: Self.endlessRoot(), maxIterations: 3))
        await expectLimit(.iterations, partial: "draft 3") { try await rlm.complete(query: "q", context: .text("c")) }
    }

    @Test("the partial answer is never raw model text")
    func noRawText() async {
        let root = ScriptedModel(name: "root") { _ in "I am thinking, no code, no answer." }
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: 2, finalAnswerOnLimit: false))
        await expectLimit(.iterations, partial: nil) { try await rlm.complete(query: "q", context: .text("c")) }
    }

    @Test("the model-call limit counts sub-calls too, exactly")
    func modelCalls() async {
        let sub = ScriptedModel(name: "sub") { _ in "ok" }
        let root = Self.endlessRoot(withSubcall: true)
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, budget: Budget(maxModelCalls: 5), finalAnswerOnLimit: false))
        await expectLimit(.modelCalls, partial: "draft 2") { try await rlm.complete(query: "q", context: .text("c")) }
        #expect(root.callCount + sub.callCount == 5)
    }

    @Test("concurrent batched calls never exceed the model-call limit")
    func modelCallsConcurrent() async {
        let sub = ScriptedModel(name: "sub", latency: .milliseconds(20)) { _ in "ok" }
        let root = ScriptedModel.sequence([
            repl("answer['content'] = 'before batch'\nr = llm_query_batched(['p'] * 50)\nanswer['content'] = 'after batch'")
        ], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, budget: Budget(maxModelCalls: 21)))
        await expectLimit(.modelCalls, partial: "before batch") { try await rlm.complete(query: "q", context: .text("c")) }
        #expect(sub.callCount == 20)
    }

    @Test("the token limit trips on recorded usage")
    func tokens() async {
        let rlm = RLM(configuration: RLMConfiguration(rootModel: Self.endlessRoot(), budget: Budget(maxTokens: 3_000)))
        do {
            _ = try await rlm.complete(query: "q", context: .text("c"))
            Issue.record("expected the token limit")
        } catch let error as RLMError {
            #expect(error.limit == .tokens)
            #expect(error.partialAnswer?.hasPrefix("draft ") == true)
            #expect((error.usage?.total.tokens.totalTokens ?? 0) >= 3_000)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("the cost limit uses the price table")
    func cost() async {
        let price = ModelPrice(inputPerMillion: 1_000, outputPerMillion: 1_000)
        let rlm = RLM(configuration: RLMConfiguration(
            rootModel: Self.endlessRoot(), budget: Budget(maxCostUSD: 2.0, prices: ["root": price])))
        do {
            _ = try await rlm.complete(query: "q", context: .text("c"))
            Issue.record("expected the cost limit")
        } catch let error as RLMError {
            #expect(error.limit == .cost)
            #expect((error.usage?.total.costUSD ?? 0) >= 2.0)
            #expect(error.usage?.byModel["root"]?.costUSD == error.usage?.total.costUSD)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("the deadline ends a slow run promptly with its best answer")
    func deadline() async {
        // The first turn drafts at once; the second waits far past the deadline, so the outcome
        // does not depend on how fast a loaded machine runs the first turn.
        let root = ScriptedModel(name: "root") { request in
            if request.index > 0 { try await Task.sleep(for: .seconds(600)) }
            return repl("answer['content'] = 'draft \(request.index + 1)'")
        }
        // The first turn (a new REPL and one cell) must fit in the deadline on a loaded machine.
        let rlm = RLM(configuration: RLMConfiguration(
            rootModel: root, maxIterations: 1_000, budget: Budget(deadline: .seconds(15))))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await rlm.complete(query: "q", context: .text("c"))
            Issue.record("expected the deadline")
        } catch let error as RLMError {
            #expect(error.limit == .deadline)
            #expect(error.partialAnswer == "draft 1")
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect(clock.now - start < .seconds(60))
    }

    @Test("the deadline also stops running Python")
    func deadlineStopsPython() async {
        let root = ScriptedModel.sequence([repl("answer['content'] = 'looping'\nwhile True:\n    pass")], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, execTimeout: .seconds(600), budget: Budget(deadline: .seconds(15))))
        await expectLimit(.deadline, partial: "looping") { try await rlm.complete(query: "q", context: .text("c")) }
    }

    @Test("consecutive errors end the run")
    func consecutiveErrors() async {
        let root = ScriptedModel(name: "root") { request in
            request.index == 0 ? repl("answer['content'] = 'early'") : repl("1/0")
        }
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, budget: Budget(maxConsecutiveErrors: 3), finalAnswerOnLimit: false))
        await expectLimit(.consecutiveErrors, partial: "early") { try await rlm.complete(query: "q", context: .text("c")) }
        #expect(root.callCount == 4)
    }

    @Test("by default (finalAnswerOnLimit) a limit asks the model for an answer instead of failing, as the reference does")
    func finalAnswerOnLimit() async throws {
        let root = ScriptedModel(name: "root") { request in
            request.prompt.contains("Give your final answer now") ? "FINAL(forced answer)" : repl("x = 1")
        }
        let configuration = RLMConfiguration(rootModel: root, maxIterations: 2)
        #expect(configuration.finalAnswerOnLimit)
        let rlm = RLM(configuration: configuration)
        let result = try await rlm.complete(query: "q", context: .text("c"))
        #expect(result.answer == "forced answer")
        #expect(result.answeredAfterLimit == .iterations)
        #expect(root.callCount == 3)
    }

    @Test("usage equals the sum of every scripted call across a tree with batched children")
    func usageAcrossTree() async throws {
        let leaf = ScriptedModel(name: "leaf") { "leaf:" + $0.prompt }
        let child = ScriptedModel(name: "child") { request in
            !request.messages.contains { $0.role == .assistant }
                ? repl("parts = llm_query_batched([context[:3], context[3:]], model='leaf')\nprint(parts)")
                : repl("answer['content'] = '+'.join(parts); answer['ready'] = True")
        }
        let root = ScriptedModel.sequence([
            repl("r = rlm_query_batched(['abcdef', 'ghijkl', 'mnopqr'], model='child')\nsingle = llm_query('direct', model='leaf')"),
            repl("answer['content'] = ' | '.join(r) + ' / ' + single; answer['ready'] = True"),
        ], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(
            rootModel: root, models: ["child": child, "leaf": leaf], maxDepth: 2, maxConcurrentSubcalls: 4,
            budget: Budget(prices: ["leaf": ModelPrice(inputPerMillion: 10, outputPerMillion: 20)])))
        let result = try await rlm.complete(query: "q", context: .text("c"))
        #expect(result.answer == "leaf:abc+leaf:def | leaf:ghi+leaf:jkl | leaf:mno+leaf:pqr / leaf:direct")
        #expect(result.usage.total.calls == root.callCount + child.callCount + leaf.callCount)
        #expect(result.usage.total.tokens == expectedUsage(root, child, leaf))
        #expect(result.usage.byModel["leaf"]?.calls == 7)
        #expect(result.usage.byModel["child"]?.calls == 6)
        #expect(result.usage.byModel["leaf"]?.tokens == expectedUsage(leaf))
        let leafTokens = expectedUsage(leaf)
        let leafCost = (Double(leafTokens.inputTokens) * 10 + Double(leafTokens.outputTokens) * 20) / 1_000_000
        #expect(abs((result.usage.byModel["leaf"]?.costUSD ?? 0) - leafCost) < 1e-12)
        #expect(result.usage.byDepth[0]?.calls == 2)
        #expect(result.usage.byDepth[1]?.calls == 7)  // 6 child turns + the root's direct llm_query
        #expect(result.usage.byDepth[2]?.calls == 6)  // the children's batched leaf calls
    }
}
