/// Answer refinement after the root answers, in the manner of the Tiny Recursion Model ("Less is
/// More: Recursive Reasoning with Tiny Networks"): a scratch state *z* is updated several times
/// from the question *x*, the current answer *y* and *z*, then *y* is updated from them, step
/// after step, until the answer settles or a judge is confident.
///
/// Each step runs in the root's own REPL and conversation, with code and sub-calls: `scratch`
/// (a `str` the model keeps its notes in) and `current_answer` are REPL variables. Every update
/// is one model turn (a scratch update) or as many turns as the model needs to answer again (the
/// answer update), all under the run's one budget. A limit reached during refinement ends the
/// run with the latest answer (``RLMResult/answeredAfterLimit`` names the limit).
///
/// ```swift
/// var configuration = RLMConfiguration(rootModel: model)
/// configuration.refinement = Refinement(maxSteps: 4, scratchUpdates: 2,
///                                       judge: .init(model: cheapModel, threshold: 0.9))
/// ```
public struct Refinement: Sendable {
    /// A cheap model asked, after each step, for the probability that the answer is correct;
    /// refinement halts once it reaches ``threshold``.
    public struct HaltingJudge: Sendable {
        /// The judge.
        public var model: any LanguageModel
        /// The probability (0–1) at or above which refinement halts. Defaults to 0.9.
        public var threshold: Double

        /// Creates a judge.
        public init(model: any LanguageModel, threshold: Double = 0.9) {
            self.model = model
            self.threshold = threshold
        }
    }

    /// The most refinement steps after the first answer (1–16). Defaults to 3.
    public var maxSteps: Int
    /// Scratch updates per step before the answer update (0 or more). Defaults to 1.
    public var scratchUpdates: Int
    /// Halts when the answer came back unchanged this many steps in a row (1 or more). Defaults to 1.
    public var haltWhenUnchangedFor: Int
    /// Halts when this judge is confident enough. Defaults to `nil`: no judge.
    public var judge: HaltingJudge?

    /// Creates a refinement plan.
    public init(maxSteps: Int = 3, scratchUpdates: Int = 1, haltWhenUnchangedFor: Int = 1, judge: HaltingJudge? = nil) {
        self.maxSteps = maxSteps
        self.scratchUpdates = scratchUpdates
        self.haltWhenUnchangedFor = haltWhenUnchangedFor
        self.judge = judge
    }

    /// Why refinement ended.
    public enum Halt: String, Sendable, Hashable, Codable {
        /// The answer came back unchanged ``haltWhenUnchangedFor`` steps in a row.
        case unchanged
        /// The judge's probability reached its threshold.
        case judge
        /// ``maxSteps`` steps ran.
        case maxSteps
    }

    /// The first number in a judge's reply, clamped to 0–1 (a percentage is divided by 100).
    static func probability(in reply: String) -> Double? {
        guard let match = reply.firstMatch(of: /\d+(?:\.\d+)?%?|\.\d+/) else { return nil }
        var text = String(match.output)
        let percent = text.hasSuffix("%")
        if percent { text.removeLast() }
        guard var value = Double(text) else { return nil }
        if percent || value > 1 { value /= 100 }
        return min(max(value, 0), 1)
    }

    func validate() throws(RLMError) {
        func invalid(_ message: String) -> RLMError { RLMError(code: .invalidConfiguration, message: "refinement: " + message) }
        if !(1...16).contains(maxSteps) { throw invalid("maxSteps must be from 1 to 16 (got \(maxSteps))") }
        if scratchUpdates < 0 { throw invalid("scratchUpdates must be 0 or more (got \(scratchUpdates))") }
        if haltWhenUnchangedFor < 1 { throw invalid("haltWhenUnchangedFor must be at least 1 (got \(haltWhenUnchangedFor))") }
        if let judge, !(0...1).contains(judge.threshold) { throw invalid("the judge's threshold must be from 0 to 1 (got \(judge.threshold))") }
    }
}

/// Where refinement stands: which update comes next, and the answer so far. Effects (model
/// turns, the REPL) are ``RLMNode``'s.
struct RefinementState: Sendable {
    enum Phase: Equatable, Sendable {
        /// Scratch update `update` (1-based) of step `step`.
        case scratch(step: Int, update: Int)
        /// The answer update of step `step`.
        case answer(step: Int)
    }

    let plan: Refinement
    private(set) var phase: Phase
    /// The latest answer.
    private(set) var answer: String
    private(set) var unchangedSteps = 0

    init(plan: Refinement, firstAnswer: String) {
        self.plan = plan
        answer = firstAnswer
        phase = plan.scratchUpdates > 0 ? .scratch(step: 1, update: 1) : .answer(step: 1)
    }

    var step: Int {
        switch phase {
        case .scratch(let step, _), .answer(let step): step
        }
    }

    /// A scratch update ended: the next phase.
    mutating func scratchDone() {
        guard case .scratch(let step, let update) = phase else { return }
        phase = update < plan.scratchUpdates ? .scratch(step: step, update: update + 1) : .answer(step: step)
    }

    /// The answer update of the current step gave `newAnswer`. Returns whether it changed, and
    /// why refinement halts, if it does, before any judge is asked.
    mutating func answered(_ newAnswer: String) -> (changed: Bool, halt: Refinement.Halt?) {
        let changed = newAnswer != answer
        answer = newAnswer
        unchangedSteps = changed ? 0 : unchangedSteps + 1
        let step = self.step
        if unchangedSteps >= plan.haltWhenUnchangedFor { return (changed, .unchanged) }
        if step >= plan.maxSteps { return (changed, .maxSteps) }
        phase = plan.scratchUpdates > 0 ? .scratch(step: step + 1, update: 1) : .answer(step: step + 1)
        return (changed, nil)
    }
}
