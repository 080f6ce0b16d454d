import RLM
import RLMTesting
import Testing

/// Every limit that ends a node or a run is reported exactly once, by the node it ended (its own
/// limits) or by the root for the whole tree (the budget's), whichever node was working when it
/// tripped.
@Suite("Limit events")
struct LimitFlowTests {
    /// The `limitReached` events of a run, as (node, limit).
    func limitEvents(_ configuration: RLMConfiguration) async -> (events: [(node: Int, limit: Limit)], error: RLMError?) {
        let run = RLM(configuration: configuration).run(query: "q", context: .text("c"))
        var found: [(Int, Limit)] = []
        for await event in run.events {
            if case .limitReached(let limit, _) = event.kind { found.append((event.nodeID, limit)) }
        }
        do {
            _ = try await run.result()
            return (found, nil)
        } catch let error as RLMError {
            return (found, error)
        } catch {
            return (found, nil)
        }
    }

    static func endless(_ name: String = "root", code: String = "x = 1") -> ScriptedModel {
        ScriptedModel(name: name) { request in repl("\(code)\nanswer['content'] = 'draft \(request.index)'") }
    }

    @Test("the root's iteration limit")
    func iterations() async {
        let (events, error) = await limitEvents(RLMConfiguration(rootModel: Self.endless(), maxIterations: 2))
        #expect(error?.limit == .iterations)
        #expect(events.map(\.limit) == [.iterations] && events.map(\.node) == [0])
    }

    @Test("the model-call limit, tripped by the root's own turn")
    func callsAtTheRoot() async {
        let (events, error) = await limitEvents(RLMConfiguration(rootModel: Self.endless(), budget: Budget(maxModelCalls: 2)))
        #expect(error?.limit == .modelCalls)
        #expect(events.map(\.limit) == [.modelCalls] && events.map(\.node) == [0])
    }

    @Test("the model-call limit, tripped by a sub-call inside a cell")
    func callsInASubcall() async {
        let sub = ScriptedModel(name: "sub") { _ in "ok" }
        var configuration = RLMConfiguration(rootModel: Self.endless(code: "llm_query('a')\nllm_query('b')"), subModel: sub)
        configuration.budget = Budget(maxModelCalls: 4)
        let (events, error) = await limitEvents(configuration)
        #expect(error?.limit == .modelCalls)
        #expect(events.map(\.limit) == [.modelCalls] && events.map(\.node) == [0])
    }

    @Test("the deadline")
    func deadline() async {
        let root = ScriptedModel(name: "root") { request in
            if request.index > 0 { try await Task.sleep(for: .seconds(600)) }
            return repl("answer['content'] = 'draft'")
        }
        let (events, error) = await limitEvents(RLMConfiguration(rootModel: root, budget: Budget(deadline: .seconds(1))))
        #expect(error?.limit == .deadline)
        #expect(events.map(\.limit) == [.deadline] && events.map(\.node) == [0])
    }

    @Test("a budget limit is reported even when a final answer follows it")
    func reportedBeforeFinalAnswer() async {
        let root = ScriptedModel(name: "root") { request in
            request.prompt.contains("Give your final answer now") ? "FINAL(forced)" : repl("x = 1")
        }
        let (events, error) = await limitEvents(RLMConfiguration(
            rootModel: root, budget: Budget(maxModelCalls: 2), finalAnswerOnLimit: true))
        #expect(error == nil)
        #expect(events.map(\.limit) == [.modelCalls])
    }

    @Test("a child's iteration limit is the child's; the run goes on and answers")
    func childIterations() async {
        let child = Self.endless("child")
        let root = ScriptedModel.sequence([
            repl("r = rlm_query('task', model='child')\nanswer['content'] = 'got ' + r; answer['ready'] = True"),
        ], name: "root")
        let (events, error) = await limitEvents(RLMConfiguration(rootModel: root, models: ["child": child], maxDepth: 2, maxIterations: 2))
        #expect(error == nil)
        #expect(events.map(\.limit) == [.iterations] && events.map(\.node) == [1])
    }

    @Test("a child that runs a cell twice, then answers, gives its answer: the conversation only grows")
    func childRepeatsACell() async throws {
        // A deterministic model answers the same conversation the same way. The engine once
        // dropped a repeated turn from the history, so the child's third request was its second
        // again: it wrote the same cell until its iteration limit instead of answering 5050.
        let child = ScriptedModel(name: "child") { request in
            let turns = request.messages.filter { $0.role == .assistant }.count
            return turns < 2 ? repl("s = sum(range(101))\nprint(s)") : "FINAL_VAR(s)"
        }
        let root = ScriptedModel.sequence([
            repl("answer['content'] = rlm_query('sum 0..100', model='child'); answer['ready'] = True"),
        ], name: "root")
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, models: ["child": child], maxDepth: 2, maxIterations: 4))
            .run(query: "q", context: .text("c")).result()
        #expect(result.answer == "5050")
        #expect(child.requests.count == 3)
        for turn in 1..<child.requests.count {
            #expect(child.requests[turn].messages.count > child.requests[turn - 1].messages.count)
        }
    }

    @Test("a token limit crossed by a child's sub-call ends the whole run, reported once by the root")
    func tokensInAChild() async {
        let child = Self.endless("child", code: "llm_query('x' * 400)")
        let sub = ScriptedModel(name: "sub") { _ in "ok" }
        let root = ScriptedModel.sequence([repl("r = rlm_query('task', model='child')")], name: "root")
        var configuration = RLMConfiguration(rootModel: root, subModel: sub, models: ["child": child], maxDepth: 2)
        configuration.budget = Budget(maxTokens: 300)
        let (events, error) = await limitEvents(configuration)
        #expect(error?.limit == .tokens)
        #expect(events.map(\.limit) == [.tokens] && events.map(\.node) == [0], "\(events)")
    }

    @Test("rlm_query_batched runs at most maxConcurrentChildren children at once, at every depth, without deadlock", .timeLimit(.minutes(1)))
    func childConcurrency() async throws {
        // Depth 1 children each start a batch of depth-2 children: per-call widths never wait on each other.
        let leaf = ScriptedModel(name: "leaf", latency: .milliseconds(10)) { _ in repl("answer['content'] = 'leaf'; answer['ready'] = True") }
        let middle = ScriptedModel(name: "middle", latency: .milliseconds(10)) { _ in
            repl("r = rlm_query_batched(['a', 'b', 'c', 'd'], model='leaf')\nanswer['content'] = str(len(r)); answer['ready'] = True")
        }
        let root = ScriptedModel.sequence([
            repl("r = rlm_query_batched(['t'] * 6, model='middle')\nanswer['content'] = ','.join(r); answer['ready'] = True"),
        ], name: "root")
        var configuration = RLMConfiguration(rootModel: root, models: ["middle": middle, "leaf": leaf], maxDepth: 3)
        configuration.maxConcurrentChildren = 2
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        #expect(result.answer == "4,4,4,4,4,4")
        #expect(middle.peakConcurrency <= 2)
        #expect(middle.callCount == 6 && leaf.callCount == 24)
        // Two middles at once, each with at most two leaves.
        #expect(leaf.peakConcurrency <= 4)
    }
}
