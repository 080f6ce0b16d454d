import Foundation

/// Decides, for each sub-call that asks for it (`llm_query(p, depth="auto")`), between a plain
/// call to the sub-model and a child RLM one level deeper: adaptive recursion depth in the manner
/// of Mixture-of-Recursions, where a router sends only the hardest tokens to deeper recursion,
/// under a capacity limit.
///
/// The engine asks the router once per call with all of its prompts (one for `llm_query`, the
/// whole batch for `llm_query_batched`), so a router can rank them against each other. Every
/// decision and its reason go into the trajectory (``RLMEvent/Kind/subcallRouted(prompt:recurse:reason:score:)``),
/// and usage is reported per depth (``UsageSummary/byDepth``). A node at the depth limit never
/// recurses, whatever the router says.
public protocol SubcallRouter: Sendable {
    /// One decision per prompt, in order.
    func route(_ prompts: [String], context: SubcallRoutingContext) async throws -> [SubcallDecision]
}

/// What a router decided for one prompt, and why.
public struct SubcallDecision: Sendable, Hashable, Codable {
    /// `true`: a child RLM; `false`: a plain call to the sub-model.
    public var recurse: Bool
    /// Why, for people reading the trajectory.
    public var reason: String
    /// The difficulty score the decision rests on, if the router scored the prompt.
    public var score: Double?

    /// Creates a decision.
    public init(recurse: Bool, reason: String, score: Double? = nil) {
        self.recurse = recurse
        self.reason = reason
        self.score = score
    }
}

/// What a router may know and do while it decides.
public struct SubcallRoutingContext: Sendable {
    /// The depth of the node whose code made the call.
    public let depth: Int
    /// The model a plain call would use.
    public let subModel: any LanguageModel
    let complete: @Sendable (any LanguageModel, [ChatMessage]) async throws -> ModelResponse

    /// Calls a model (a scorer, say) as part of the run: counted in its budget and usage.
    public func complete(_ model: any LanguageModel, _ messages: [ChatMessage]) async throws -> ModelResponse {
        try await complete(model, messages)
    }
}

/// Recurses only when a prompt cannot fit the sub-model's context window (an estimate; see
/// ``TokenEstimate``): a child RLM can split it in its REPL, a plain call would be refused. With
/// no known window, every call is plain. The default router.
public struct WindowRouter: SubcallRouter {
    /// Creates the router.
    public init() {}

    public func route(_ prompts: [String], context: SubcallRoutingContext) async throws -> [SubcallDecision] {
        guard let window = context.subModel.contextWindow else {
            return prompts.map { _ in SubcallDecision(recurse: false, reason: "the sub-model's context window is unknown: a plain call") }
        }
        return prompts.map { prompt in
            let tokens = TokenEstimate.tokens(in: prompt)
            return tokens > window.promptTokens
                ? SubcallDecision(recurse: true, reason: "about \(tokens) tokens do not fit the \(window.promptTokens) the sub-model reads: a child RLM")
                : SubcallDecision(recurse: false, reason: "about \(tokens) tokens fit the sub-model's window: a plain call")
        }
    }
}

/// A cheap model rates each prompt's difficulty from 0 to 1, and the hardest go deep: of a call's
/// `n` prompts, at most `ceil(capacityFactor × n)` (at least 1), and only those scored at or
/// above ``threshold`` (expert-choice routing with a capacity factor). Prompts that cannot fit the
/// sub-model's window always go deep, outside the capacity.
public struct ScoredRouter: SubcallRouter {
    /// The model that rates difficulty.
    public var scorer: any LanguageModel
    /// The share of a call's prompts that may go deep. Defaults to 0.25.
    public var capacityFactor: Double
    /// The least difficulty that goes deep. Defaults to 0.5.
    public var threshold: Double

    /// Creates the router.
    public init(scorer: any LanguageModel, capacityFactor: Double = 0.25, threshold: Double = 0.5) {
        self.scorer = scorer
        self.capacityFactor = capacityFactor
        self.threshold = threshold
    }

    static func scoringPrompt(_ prompt: String) -> String {
        let clipped = prompt.count <= 4_000 ? prompt : String(prompt.prefix(4_000)) + " […]"
        return """
            How hard is the following task for a language model answering in one reply, without running code? \
            Reply with one number from 0 (trivial) to 1 (needs careful multi-step work), nothing else.

            Task: \(clipped)
            """
    }

    public func route(_ prompts: [String], context: SubcallRoutingContext) async throws -> [SubcallDecision] {
        let scorer = self.scorer
        let scores = try await withThrowingTaskGroup(of: (Int, Double?).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask {
                    let reply = try await context.complete(scorer, [.user(Self.scoringPrompt(prompt))])
                    return (index, Refinement.probability(in: reply.text))
                }
            }
            var scores = [Double?](repeating: nil, count: prompts.count)
            for try await (index, score) in group { scores[index] = score }
            return scores
        }
        let window = context.subModel.contextWindow
        let capacity = max(1, Int((capacityFactor * Double(prompts.count)).rounded(.up)))
        let ranked = scores.indices.filter { (scores[$0] ?? 0) >= threshold }.sorted { (scores[$0] ?? 0) > (scores[$1] ?? 0) }
        let deep = Set(ranked.prefix(capacity))
        return prompts.indices.map { index in
            let score = scores[index]
            let shown = score.map { String(format: "%.2f", $0) } ?? "no score"
            if let window, TokenEstimate.tokens(in: prompts[index]) > window.promptTokens {
                return SubcallDecision(recurse: true, reason: "difficulty \(shown), and it cannot fit the sub-model's window: a child RLM", score: score)
            }
            if deep.contains(index) {
                return SubcallDecision(recurse: true, reason: "difficulty \(shown), among the hardest \(capacity) of \(prompts.count): a child RLM", score: score)
            }
            if (score ?? 0) >= threshold {
                return SubcallDecision(recurse: false, reason: "difficulty \(shown), but the \(capacity) deep places of this call are taken: a plain call", score: score)
            }
            return SubcallDecision(recurse: false, reason: "difficulty \(shown), under \(String(format: "%.2f", threshold)): a plain call", score: score)
        }
    }
}
