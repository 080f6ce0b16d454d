/// The outcome of a run that produced an answer.
public struct RLMResult: Sendable {
    /// The answer the root model submitted.
    public var answer: String
    /// Exact usage of the whole tree.
    public var usage: UsageSummary
    /// Turns the root model took.
    public var iterations: Int
    /// Wall-clock time of the run.
    public var elapsed: Duration
    /// Every event of the run, in order (the same ones the event stream and the trajectory get).
    public var events: [RLMEvent]
    /// Set when a limit was reached and the answer came from the one extra call that
    /// ``RLMConfiguration/finalAnswerOnLimit`` allows.
    public var answeredAfterLimit: Limit?
}
