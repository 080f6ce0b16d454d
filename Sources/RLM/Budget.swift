/// The price of a model, in US dollars per million tokens.
public struct ModelPrice: Sendable, Hashable, Codable {
    /// Dollars per million uncached input tokens.
    public var inputPerMillion: Double
    /// Dollars per million output tokens.
    public var outputPerMillion: Double
    /// Dollars per million cached input tokens (cache reads). Defaults to the input price.
    public var cachedInputPerMillion: Double
    /// Dollars per million input tokens written to the provider's cache. Defaults to the input
    /// price (Anthropic's 5-minute cache bills 1.25× its input price).
    public var cacheWritePerMillion: Double

    /// Creates a price.
    public init(inputPerMillion: Double, outputPerMillion: Double, cachedInputPerMillion: Double? = nil, cacheWritePerMillion: Double? = nil) {
        self.inputPerMillion = inputPerMillion
        self.outputPerMillion = outputPerMillion
        self.cachedInputPerMillion = cachedInputPerMillion ?? inputPerMillion
        self.cacheWritePerMillion = cacheWritePerMillion ?? inputPerMillion
    }

    private enum CodingKeys: String, CodingKey {
        case inputPerMillion, outputPerMillion, cachedInputPerMillion, cacheWritePerMillion
    }

    /// Decodes a price; missing cache prices default to the input price.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            inputPerMillion: try container.decode(Double.self, forKey: .inputPerMillion),
            outputPerMillion: try container.decode(Double.self, forKey: .outputPerMillion),
            cachedInputPerMillion: try container.decodeIfPresent(Double.self, forKey: .cachedInputPerMillion),
            cacheWritePerMillion: try container.decodeIfPresent(Double.self, forKey: .cacheWritePerMillion))
    }

    /// The cost of `usage` at this price: cache reads at the cached price, cache writes at the
    /// write price, the rest of the input at the input price.
    public func cost(of usage: TokenUsage) -> Double {
        let cached = min(usage.cachedInputTokens, usage.inputTokens)
        let written = min(usage.cacheWriteInputTokens, usage.inputTokens - cached)
        return (Double(usage.inputTokens - cached - written) * inputPerMillion + Double(cached) * cachedInputPerMillion
            + Double(written) * cacheWritePerMillion + Double(usage.outputTokens) * outputPerMillion) / 1_000_000
    }
}

/// Limits shared by a whole recursion tree: the root, its children and every batched call draw
/// from one budget.
///
/// Every limit defaults to `nil`, meaning unlimited; ``RLMConfiguration/maxIterations`` and
/// ``RLMConfiguration/maxDepth`` bound a run in any case.
public struct Budget: Sendable, Hashable {
    /// The most model calls in the tree (root iterations, sub-calls and children's calls).
    public var maxModelCalls: Int?
    /// The most input plus output tokens in the tree.
    public var maxTokens: Int?
    /// The most US dollars, priced with ``prices``.
    public var maxCostUSD: Double?
    /// Wall-clock time for the whole run.
    public var deadline: Duration?
    /// How many failed steps in a row (model errors, or cells that raised) one RLM may take.
    public var maxConsecutiveErrors: Int?
    /// Prices by ``LanguageModel/modelName``; models without a price cost nothing.
    public var prices: [String: ModelPrice]

    /// Creates a budget.
    public init(
        maxModelCalls: Int? = nil, maxTokens: Int? = nil, maxCostUSD: Double? = nil, deadline: Duration? = nil,
        maxConsecutiveErrors: Int? = nil, prices: [String: ModelPrice] = [:]
    ) {
        self.maxModelCalls = maxModelCalls
        self.maxTokens = maxTokens
        self.maxCostUSD = maxCostUSD
        self.deadline = deadline
        self.maxConsecutiveErrors = maxConsecutiveErrors
        self.prices = prices
    }

    /// No limits.
    public static let unlimited = Budget()
}

/// Which limit ended a run.
public enum Limit: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// ``RLMConfiguration/maxIterations`` at the root.
    case iterations
    /// ``Budget/maxModelCalls``.
    case modelCalls
    /// ``Budget/maxTokens``.
    case tokens
    /// ``Budget/maxCostUSD``.
    case cost
    /// ``Budget/deadline``.
    case deadline
    /// ``Budget/maxConsecutiveErrors``.
    case consecutiveErrors
    /// A cell could not be stopped after its time limit (a long C-level call holding the
    /// interpreter), and no fresh REPL could be started within the cell time limit after it.
    case unstoppableCode

    /// Whether the limit belongs to one node rather than to the whole tree.
    ///
    /// This is the one rule for who reports a limit (`RLMEvent.Kind.limitReached`, exactly once):
    /// - A node's own limits — its turns (`iterations`), its errors in a row
    ///   (`consecutiveErrors`) and code it could not stop (`unstoppableCode`) — end that node, and
    ///   the node reports them. For the root that ends the run; for a child, the parent's
    ///   `rlm_query` returns the child's best answer, or raises in the parent's cell.
    /// - The budget's limits (`modelCalls`, `tokens`, `cost`, `deadline`) end the whole tree
    ///   wherever they trip, and the root reports them once, whichever node was working.
    var isNodeLimit: Bool {
        switch self {
        case .iterations, .consecutiveErrors, .unstoppableCode: true
        case .modelCalls, .tokens, .cost, .deadline: false
        }
    }

    public var description: String {
        switch self {
        case .iterations: "iteration limit"
        case .modelCalls: "model-call limit"
        case .tokens: "token limit"
        case .cost: "cost limit"
        case .deadline: "deadline"
        case .consecutiveErrors: "consecutive-error limit"
        case .unstoppableCode: "limit on code that cannot be stopped"
        }
    }
}
