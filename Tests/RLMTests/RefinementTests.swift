import RLM
import RLMTesting
import Testing

/// TRM-style answer refinement (``RLMConfiguration/refinement``) with scripted models.
@Suite("Answer refinement")
struct RefinementTests {
    /// A root that answers 41 first; in each scratch update it adds a note; in each answer update
    /// it answers 42 once its notes hold `fixAfter` of them, else repeats its answer.
    static func root(fixAfter: Int) -> ScriptedModel {
        ScriptedModel(name: "root") { request in
            let prompt = request.prompt
            if prompt.contains("only work on your notes") {
                return repl("scratch += 'n'\nprint(len(scratch), current_answer)")
            }
            if prompt.contains("Now answer again") {
                return repl("answer['content'] = '42' if len(scratch) >= \(fixAfter) else current_answer\nanswer['ready'] = True")
            }
            return "FINAL(41)"
        }
    }

    static func steps(_ result: RLMResult) -> [(step: Int, answer: String, changed: Bool, score: Double?)] {
        result.events.compactMap {
            guard case .refinementStep(let step, let answer, let changed, let score) = $0.kind else { return nil }
            return (step, answer, changed, score)
        }
    }

    static func halt(_ result: RLMResult) -> (steps: Int, reason: Refinement.Halt)? {
        result.events.lazy.compactMap {
            guard case .refinementFinished(let steps, let reason) = $0.kind else { return nil }
            return (steps, reason)
        }.first
    }

    @Test("a wrong first answer is corrected at step 2, and refinement halts once the answer holds for two steps")
    func correctedAtStepTwo() async throws {
        let root = Self.root(fixAfter: 2)
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 30)
        configuration.refinement = Refinement(maxSteps: 8, scratchUpdates: 1, haltWhenUnchangedFor: 2)
        let result = try await RLM(configuration: configuration).complete(query: "what is six times seven?", context: .text("6 7"))
        #expect(result.answer == "42")
        let steps = Self.steps(result)
        #expect(steps.map(\.answer) == ["41", "42", "42", "42"])
        #expect(steps.map(\.changed) == [false, true, false, false])
        #expect(Self.halt(result)?.steps == 4 && Self.halt(result)?.reason == .unchanged)
        // First answer, then each step's note and answer: 1 + 4 × 2 model turns.
        #expect(root.callCount == 9)
        // The scratch turns saw their notes grow in the REPL.
        #expect(cellOutputs(result).contains { $0.contains("2 41") })
        #expect(result.answeredAfterLimit == nil)
    }

    @Test("a confident judge halts refinement after its first step")
    func judgeHaltsEarly() async throws {
        let root = Self.root(fixAfter: 1)
        let judge = ScriptedModel(name: "judge") { request in
            request.prompt.contains("Proposed answer: 42") ? "0.95" : "0.2"
        }
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 30)
        configuration.refinement = Refinement(maxSteps: 8, scratchUpdates: 2, haltWhenUnchangedFor: 8, judge: .init(model: judge, threshold: 0.9))
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        #expect(result.answer == "42")
        let steps = Self.steps(result)
        #expect(steps.count == 1)
        #expect(steps.first?.score == 0.95)
        #expect(Self.halt(result)?.reason == .judge)
        #expect(root.callCount == 4)  // the first answer, two notes, one answer
        #expect(judge.callCount == 1)
        // The judge's call is the run's too.
        #expect(result.usage.byModel["judge"]?.calls == 1)
    }

    @Test("a judge that fails only loses its vote: refinement goes on and halts by the other rule")
    func failingJudge() async throws {
        let root = Self.root(fixAfter: 1)
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 30)
        configuration.refinement = Refinement(maxSteps: 5, haltWhenUnchangedFor: 1, judge: .init(model: ScriptedModel.sequence([], name: "broken")))
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        #expect(result.answer == "42")
        #expect(Self.steps(result).map(\.score) == [nil, nil])
        #expect(Self.halt(result)?.reason == .unchanged)
    }

    @Test("a limit in the middle of refinement returns the latest answer, naming the limit")
    func limitReturnsBestSoFar() async throws {
        let root = Self.root(fixAfter: 1)
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 30, budget: Budget(maxModelCalls: 4))
        configuration.refinement = Refinement(maxSteps: 8, scratchUpdates: 1, haltWhenUnchangedFor: 8)
        // Calls: the first answer (41), step 1's note and answer (42), step 2's note; step 2's
        // answer would be the fifth.
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        #expect(result.answer == "42")
        #expect(result.answeredAfterLimit == .modelCalls)
        #expect(root.callCount == 4)
        #expect(Self.steps(result).map(\.answer) == ["42"])
    }

    @Test("with refinement off (the default) the first answer is the result")
    func offByDefault() async throws {
        let root = Self.root(fixAfter: 1)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("c"))
        #expect(result.answer == "41")
        #expect(root.callCount == 1)
        #expect(Self.steps(result).isEmpty)
    }

    @Test("a refinement plan out of range is a configuration error naming the field", arguments: [
        (Refinement(maxSteps: 0), "maxSteps"), (Refinement(maxSteps: 17), "maxSteps"),
        (Refinement(scratchUpdates: -1), "scratchUpdates"), (Refinement(haltWhenUnchangedFor: 0), "haltWhenUnchangedFor"),
    ])
    func invalidPlan(plan: Refinement, field: String) async throws {
        var configuration = RLMConfiguration(rootModel: ScriptedModel.sequence(["FINAL(x)"]))
        configuration.refinement = plan
        await #expect {
            _ = try await RLM(configuration: configuration).complete(query: "q", context: .text("c"))
        } throws: { error in
            (error as? RLMError)?.code == .invalidConfiguration && (error as? RLMError)?.message.contains(field) == true
        }
    }
}
