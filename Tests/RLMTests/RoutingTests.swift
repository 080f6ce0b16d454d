import RLM
import RLMTesting
import Testing

/// Adaptive recursion depth: `llm_query(p, depth="auto")` and the ``SubcallRouter``s.
@Suite("Sub-call routing")
struct RoutingTests {
    /// Plays the root (its turns by number) and every child RLM (which answers "deep:" and the
    /// start of its context).
    static func root(_ turns: [String]) -> ScriptedModel {
        ScriptedModel(name: "root") { request in
            if request.messages.contains(where: { $0.role == .user && $0.content.contains("Your task is written in") }) {
                return repl("answer['content'] = 'deep:' + context[:6]\nanswer['ready'] = True")
            }
            let turn = request.messages.count(where: { $0.role == .assistant })
            return turns[min(turn, turns.count - 1)]
        }
    }

    static func routed(_ result: RLMResult) -> [(prompt: String, recurse: Bool, reason: String, score: Double?)] {
        result.events.compactMap {
            guard case .subcallRouted(let prompt, let recurse, let reason, let score) = $0.kind else { return nil }
            return (prompt, recurse, reason, score)
        }
    }

    @Test("the window router sends only the prompt that cannot fit the sub-model's window to a child RLM")
    func windowRouter() async throws {
        let sub = ScriptedModel(name: "sub", contextWindow: ContextWindow(tokens: 1_000, reservedForReply: 100)) { _ in "plain" }
        let root = Self.root([
            repl("big = 'x' * 20_000\nr = llm_query_batched(['small one', big], depth='auto')\nprint(r)"),
            "FINAL_VAR(r)",
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxDepth: 2))
            .complete(query: "q", context: .text("c"))
        #expect(result.answer == "['plain', 'deep:xxxxxx']")
        let routes = Self.routed(result)
        #expect(routes.map(\.recurse) == [false, true])
        #expect(routes[1].reason.contains("do not fit"))
        #expect(sub.callCount == 1)
        // Depth 1's calls: the plain sub-call and the child's own turn.
        #expect(result.usage.byDepth[1]?.calls == 2)
    }

    @Test("the scored router sends the hardest prompts deep, up to its capacity, and says why for each")
    func scoredRouter() async throws {
        let scorer = ScriptedModel(name: "scorer") { request in
            request.prompt.contains("Task: hard") ? (request.prompt.contains("hard-3") ? "0.7" : "0.9") : "0.1"
        }
        let sub = ScriptedModel(name: "sub") { _ in "plain" }
        let root = Self.root([
            repl("ps = ['hard-1', 'easy-1', 'hard-2', 'easy-2', 'hard-3', 'easy-3', 'easy-4', 'easy-5']\nr = llm_query_batched(ps, depth='auto')"),
            "FINAL_VAR(r)",
        ])
        var configuration = RLMConfiguration(rootModel: root, subModel: sub, maxDepth: 2)
        configuration.subcallRouter = ScoredRouter(scorer: scorer, capacityFactor: 0.25, threshold: 0.5)
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        #expect(result.answer == "['deep:hard-1', 'plain', 'deep:hard-2', 'plain', 'plain', 'plain', 'plain', 'plain']")
        let routes = Self.routed(result)
        #expect(routes.map(\.recurse) == [true, false, true, false, false, false, false, false])
        #expect(routes[0].score == 0.9 && routes[1].score == 0.1)
        #expect(routes[4].reason.contains("deep places of this call are taken"), "\(routes[4].reason)")
        #expect(routes[1].reason.contains("under 0.50"))
        #expect(scorer.callCount == 8)
        #expect(result.usage.byModel["scorer"]?.calls == 8)
    }

    @Test("depth=1 asks for a child, at the depth limit 'auto' is a plain call, and a bad depth is a ValueError the model sees")
    func explicitDepthsAndLimits() async throws {
        let sub = ScriptedModel(name: "sub") { _ in "plain" }
        let root = Self.root([
            repl("a = llm_query('child!', depth=1)\nb = llm_query('asked plain')\nprint(a, b)\nllm_query('x', depth='deep')"),
            "FINAL_VAR(a)",
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxDepth: 2))
            .complete(query: "q", context: .text("c"))
        #expect(result.answer == "deep:child!")
        let output = cellOutputs(result, depth: 0).first ?? ""
        #expect(output.contains("deep:child! plain"), "\(output)")
        #expect(output.contains("ValueError") && output.contains("depth must be None"), "\(output)")

        let flat = Self.root([repl("r = llm_query('at the limit', depth='auto')"), "FINAL_VAR(r)"])
        let limited = try await RLM(configuration: RLMConfiguration(rootModel: flat, subModel: sub, maxDepth: 1))
            .complete(query: "q", context: .text("c"))
        #expect(limited.answer == "plain")
        #expect(Self.routed(limited).first?.reason.contains("depth limit") == true)
    }
}
