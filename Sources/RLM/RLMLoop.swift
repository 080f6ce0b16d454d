/// The turn-by-turn logic of one RLM node, as a state machine without effects.
///
/// Each event (a model reply, a finished cell, a resolved `FINAL_VAR`) is a `mutating` call that
/// returns the next ``Action``; ``RLMNode`` performs the actions (model calls, Python). The loop
/// can therefore be tested without a model or an interpreter.
struct RLMLoop: Sendable {
    enum Action: Equatable, Sendable {
        /// Ask the model for turn `iteration`, sending ``feedback`` first.
        case callModel(iteration: Int)
        /// Run the reply's `cell`-th block (1-based).
        case execute(cell: Int, code: String)
        /// Read the REPL variable a `FINAL_VAR(name)` named.
        case resolveVariable(String)
        /// The node answered.
        case finish(String)
        /// A limit ended the node.
        case stop(Limit)
    }

    /// What the REPL's answer protocol says after a cell.
    struct AnswerState: Equatable, Sendable {
        var ready: Bool
        var content: String
    }

    let maxIterations: Int
    let maxConsecutiveErrors: Int?
    private(set) var iteration = 0
    private(set) var consecutiveErrors = 0
    /// The last non-empty `answer["content"]`.
    private(set) var bestAnswer: String?
    /// Text for the next user message: cell outputs and notes, in order.
    private(set) var feedback: [String] = []
    private var blocks: [String] = []
    private var nextBlock = 0
    private var final: ReplyParser.FinalMarker?

    init(maxIterations: Int, maxConsecutiveErrors: Int?) {
        self.maxIterations = maxIterations
        self.maxConsecutiveErrors = maxConsecutiveErrors
    }

    mutating func start() -> Action {
        nextTurn()
    }

    /// Goes on after an answer (refinement asks for more turns).
    mutating func resume() -> Action {
        nextTurn()
    }

    mutating func modelReplied(_ reply: String) -> Action {
        blocks = ReplyParser.codeBlocks(in: reply)
        nextBlock = 0
        final = ReplyParser.finalMarker(in: reply)
        if blocks.isEmpty && final == nil {
            feedback.append(Prompts.noCodeNoAnswer)
        }
        return afterBlocks()
    }

    mutating func modelFailed(_ message: String) -> Action {
        feedback.append("[the previous model call failed: \(message)]")
        if let stop = countError() { return stop }
        return nextTurn()
    }

    mutating func cellFinished(output: String, failed: Bool, answer: AnswerState) -> Action {
        feedback.append(output)
        if !answer.content.isEmpty { bestAnswer = answer.content }
        if answer.ready { return .finish(answer.content) }
        if failed {
            if let stop = countError() { return stop }
        } else {
            consecutiveErrors = 0
        }
        return afterBlocks()
    }

    mutating func variableResolved(name: String, value: String?) -> Action {
        if let value { return .finish(value) }
        feedback.append(Prompts.missingFinalVariable(name))
        return nextTurn()
    }

    /// Takes the feedback for the next user message.
    mutating func takeFeedback() -> [String] {
        defer { feedback = [] }
        return feedback
    }

    private mutating func afterBlocks() -> Action {
        if nextBlock < blocks.count {
            nextBlock += 1
            return .execute(cell: nextBlock, code: blocks[nextBlock - 1])
        }
        switch final {
        case .text(let text)?:
            return .finish(text)
        case .variable(let name)?:
            return .resolveVariable(name)
        case nil:
            return nextTurn()
        }
    }

    private mutating func countError() -> Action? {
        consecutiveErrors += 1
        if let max = maxConsecutiveErrors, consecutiveErrors >= max { return .stop(.consecutiveErrors) }
        return nil
    }

    private mutating func nextTurn() -> Action {
        guard iteration < maxIterations else { return .stop(.iterations) }
        iteration += 1
        blocks = []
        nextBlock = 0
        final = nil
        return .callModel(iteration: iteration)
    }
}
