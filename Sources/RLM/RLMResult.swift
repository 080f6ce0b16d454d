/// The outcome of a run that produced an answer. `Codable`, so a server can store it.
public struct RLMResult: Sendable, Hashable, Codable {
    /// The answer the root model submitted.
    public var answer: String
    /// Exact usage of the whole tree.
    public var usage: UsageSummary
    /// Turns the root model took.
    public var iterations: Int
    /// Wall-clock time of the run.
    public var elapsed: Duration
    /// Every event of the run, in order, except streamed reply pieces (the whole reply follows in
    /// ``RLMEvent/Kind/modelReplied(iteration:text:usage:latency:)``). Sub-call and child prompts
    /// and sub-call responses are clipped to 4,000 characters (the start and the end kept), so
    /// the result does not hold copies of a large context.
    public var events: [RLMEvent]
    /// Set when a limit was reached and the answer came from the one extra call that
    /// ``RLMConfiguration/finalAnswerOnLimit`` allows.
    public var answeredAfterLimit: Limit?
    /// How the answer was found: `.direct` (one call with the whole context; ``iterations`` is
    /// then 0) or `.rlm`. `nil` in results stored before strategies existed.
    public var strategy: Strategy?

    /// Creates a result (for tests, replays and stores).
    public init(
        answer: String, usage: UsageSummary, iterations: Int, elapsed: Duration, events: [RLMEvent] = [],
        answeredAfterLimit: Limit? = nil, strategy: Strategy? = nil
    ) {
        self.answer = answer
        self.usage = usage
        self.iterations = iterations
        self.elapsed = elapsed
        self.events = events
        self.answeredAfterLimit = answeredAfterLimit
        self.strategy = strategy
    }
}
