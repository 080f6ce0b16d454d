/// Calls, tokens and cost of one model, one depth, or a whole run.
public struct ModelUsage: Sendable, Hashable, Codable {
    /// Completed model calls.
    public var calls: Int
    /// Tokens those calls consumed.
    public var tokens: TokenUsage
    /// Their cost in US dollars, from the budget's price table.
    public var costUSD: Double

    /// Creates a record.
    public init(calls: Int = 0, tokens: TokenUsage = TokenUsage(), costUSD: Double = 0) {
        self.calls = calls
        self.tokens = tokens
        self.costUSD = costUSD
    }

    mutating func add(_ tokens: TokenUsage, cost: Double) {
        calls += 1
        self.tokens += tokens
        costUSD += cost
    }
}

/// Exact usage of a run: in total, per model and per depth, counting every batched call and
/// every child RLM.
public struct UsageSummary: Sendable, Hashable, Codable {
    /// All calls of the run.
    public var total: ModelUsage
    /// By ``LanguageModel/modelName``.
    public var byModel: [String: ModelUsage]
    /// By the depth of the RLM node that made the call (the root is 0).
    public var byDepth: [Int: ModelUsage]

    /// Creates a summary.
    public init(total: ModelUsage = ModelUsage(), byModel: [String: ModelUsage] = [:], byDepth: [Int: ModelUsage] = [:]) {
        self.total = total
        self.byModel = byModel
        self.byDepth = byDepth
    }

    mutating func record(model: String, depth: Int, tokens: TokenUsage, cost: Double) {
        total.add(tokens, cost: cost)
        byModel[model, default: ModelUsage()].add(tokens, cost: cost)
        byDepth[depth, default: ModelUsage()].add(tokens, cost: cost)
    }
}
