/// Calls, tokens and cost of one model, one depth, or a whole run.
public struct ModelUsage: Sendable, Hashable, Codable {
    /// Completed model calls.
    public var calls: Int
    /// Tokens those calls consumed.
    public var tokens: TokenUsage
    /// Their cost in US dollars, from the budget's price table.
    public var costUSD: Double
    /// Calls answered from the ``ModelCache`` instead of the model (not in ``calls``).
    public var cacheHits: Int
    /// Calls looked up in the cache and not found there (they are in ``calls``).
    public var cacheMisses: Int
    /// Tokens the cache hits would have cost, as the model first reported them.
    public var savedTokens: TokenUsage
    /// What those tokens would have cost in US dollars.
    public var savedCostUSD: Double

    /// Creates a record.
    public init(
        calls: Int = 0, tokens: TokenUsage = TokenUsage(), costUSD: Double = 0, cacheHits: Int = 0, cacheMisses: Int = 0,
        savedTokens: TokenUsage = TokenUsage(), savedCostUSD: Double = 0
    ) {
        self.calls = calls
        self.tokens = tokens
        self.costUSD = costUSD
        self.cacheHits = cacheHits
        self.cacheMisses = cacheMisses
        self.savedTokens = savedTokens
        self.savedCostUSD = savedCostUSD
    }

    private enum CodingKeys: String, CodingKey {
        case calls, tokens, costUSD, cacheHits, cacheMisses, savedTokens, savedCostUSD
    }

    /// Decodes a record; ones written before the cache fields existed decode with zeros.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        calls = try container.decode(Int.self, forKey: .calls)
        tokens = try container.decode(TokenUsage.self, forKey: .tokens)
        costUSD = try container.decode(Double.self, forKey: .costUSD)
        cacheHits = try container.decodeIfPresent(Int.self, forKey: .cacheHits) ?? 0
        cacheMisses = try container.decodeIfPresent(Int.self, forKey: .cacheMisses) ?? 0
        savedTokens = try container.decodeIfPresent(TokenUsage.self, forKey: .savedTokens) ?? TokenUsage()
        savedCostUSD = try container.decodeIfPresent(Double.self, forKey: .savedCostUSD) ?? 0
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

    /// A cache lookup: a hit saved `saved` tokens worth `cost`; a miss (`saved == nil`) goes on to the model.
    mutating func recordLookup(model: String, depth: Int, saved: TokenUsage?, cost: Double) {
        func add(_ usage: inout ModelUsage) {
            guard let saved else {
                usage.cacheMisses += 1
                return
            }
            usage.cacheHits += 1
            usage.savedTokens += saved
            usage.savedCostUSD += cost
        }
        add(&total)
        add(&byModel[model, default: ModelUsage()])
        add(&byDepth[depth, default: ModelUsage()])
    }
}
