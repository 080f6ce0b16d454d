import Foundation

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
        /// Check that the answer is grounded (``Assists/Assist/grounding``) before it is taken:
        /// the node reads what it needs with ``groundingInput(for:query:)`` and the REPL, and
        /// goes on with ``checked(_:missing:)``.
        case check(String)
        /// The node answered.
        case finish(String)
        /// A limit ended the node.
        case stop(Limit)
    }

    /// One piece of the next user message.
    enum Feedback: Equatable, Sendable {
        /// A cell's code and output, as the protocol shows it.
        case output(code: String, output: String)
        /// The engine's protocol messages: a failed model call, a `FINAL_VAR` of a missing name.
        case engine(String)
        /// An assist's words (``Assists``).
        case assist(Assists.Assist, String)

        var text: String {
            switch self {
            case .output(_, let text), .engine(let text), .assist(_, let text): return text
            }
        }
    }

    /// What the REPL's answer protocol says after a cell.
    struct AnswerState: Equatable, Sendable {
        var ready: Bool
        var content: String
    }

    let maxIterations: Int
    let maxConsecutiveErrors: Int?
    let assists: Assists
    private(set) var iteration = 0
    private(set) var consecutiveErrors = 0
    /// The last non-empty `answer["content"]`.
    private(set) var bestAnswer: String?
    /// Whether the answer being finished was submitted by code (`answer["ready"]`, `FINAL(…)` in
    /// a block) rather than in the reply's prose.
    private(set) var submittedByCode = false
    /// Text for the next user message: cell outputs and notes, in order.
    private(set) var feedback: [Feedback] = []
    private var blocks: [String] = []
    private var nextBlock = 0
    private var final: AnswerReader.Reading?
    /// The text of a `FINAL(name)` being resolved as a variable, for when there is none.
    private var literalFallback: String?
    /// Each cell run so far (its code, trimmed, and its output after the block header), with how
    /// many times: a third run of one, output and all, learned nothing, and the model is told (a
    /// second may be a model checking its work; ``repeatsBeforeNote``).
    private var ran: [[String]: Int] = [:]
    /// Whether every cell of the last turn ran without error, printed nothing and submitted nothing.
    private var lastTurnSilent = false
    /// This turn's cells that ran without error, printed nothing and submitted nothing.
    private var turnSilentCells = 0
    /// This turn's cells, and how many of them repeated an earlier cell.
    private var turnCells = 0
    private var turnRepeats = 0
    /// Turns in a row whose every cell repeated an earlier one that ran without error, output
    /// and all.
    private var stalledTurns = 0
    /// Whether the turn being asked for is an answer-now request: the model re-ran code that
    /// showed nothing new for ``stalledTurnsBeforeAsking`` turns, so it is asked for its answer
    /// (``Prompts/answerNow(query:outputs:)``), and its reply may give it in the forms a forced
    /// final answer may take (``AnswerReader/Leniency/answerRequest``).
    private(set) var askingForAnswer = false
    /// Whether the reply being handled answers an answer-now request, or follows a reply with
    /// neither code nor an answer (``Prompts/noCodeNoAnswer(outputs:)`` asked for one): Qwen replied a bare
    /// `9` five turns running after a cell printed 9.
    private var answering = false
    /// Whether this turn's reply had neither code nor an answer.
    private var toldToSubmit = false
    /// The answer the reply being handled states outside the protocol, when it answers an
    /// answer-now request; taken when its cells submit nothing.
    private var statedAnswer: AnswerReader.Reading?
    /// The latest distinct short outputs of cells that ran without error, newest last: what an
    /// answer-now request quotes.
    private(set) var recentOutputs: [String] = []
    /// Every cell's output, without the lines it printed as literals written in its code
    /// (``evidence(output:code:)``): what grounds an answer (``RLMConfiguration/groundAnswers``).
    private(set) var evidence: [String] = []
    /// How many of ``evidence`` came before the turn being handled.
    private(set) var evidenceBeforeTurn = 0
    static let stalledTurnsBeforeAsking = 2
    /// Whether an answer was questioned as ungrounded: the next one is taken as it is.
    private var questioned = false
    /// Whether the node is refining an answer it gave (``RLMConfiguration/refinement``): its
    /// answers then are not questioned.
    var refining = false
    /// How many earlier runs of a cell that ran without error, output and all, make the next one
    /// a repeat worth a note: the third run, since a model that follows the protocol may run a
    /// cell twice (to check it, or after a turn that changed nothing it reads).
    static let repeatsBeforeNote = 2

    init(maxIterations: Int, maxConsecutiveErrors: Int?, assists: Assists = .default) {
        self.maxIterations = maxIterations
        self.maxConsecutiveErrors = maxConsecutiveErrors
        self.assists = assists
    }

    /// Adds `assist`'s words to the next message, when it is in use.
    private mutating func assist(_ assist: Assists.Assist, _ text: String) {
        if assists.contains(assist) { feedback.append(.assist(assist, text)) }
    }

    mutating func start() -> Action {
        nextTurn()
    }

    /// Goes on after an answer (refinement asks for more turns).
    mutating func resume() -> Action {
        nextTurn()
    }

    mutating func modelReplied(_ reply: String) -> Action {
        let leniency: AnswerReader.Leniency = !assists.contains(.lenientAnswers) ? .paper : answering ? .answerRequest : .protocolForms
        blocks = ReplyParser.codeBlocks(in: reply, pythonBlocks: assists.contains(.pythonBlocks))
        nextBlock = 0
        final = AnswerReader.marker(in: reply, leniency: leniency)
        statedAnswer = final == nil ? AnswerReader.stated(in: reply, blocks: blocks, leniency: leniency) : nil
        if blocks.isEmpty && final == nil && statedAnswer == nil && assists.contains(.noCodeNoAnswer) {
            assist(.noCodeNoAnswer, Prompts.noCodeNoAnswer(outputs: recentOutputs))
            toldToSubmit = true
        }
        return afterBlocks()
    }

    mutating func modelFailed(_ message: String) -> Action {
        feedback.append(.engine("[the previous model call failed: \(message)]"))
        if let stop = countError() { return stop }
        return nextTurn()
    }

    mutating func cellFinished(output: String, failed: Bool, answer: AnswerState) -> Action {
        feedback.append(.output(code: nextBlock > 0 && nextBlock <= blocks.count ? blocks[nextBlock - 1] : "", output: output))
        let body = output.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first ?? ""
        let shown = body.trimmingCharacters(in: .whitespacesAndNewlines)
        if nextBlock > 0, nextBlock <= blocks.count {
            evidence.append(Self.evidence(output: String(body), code: blocks[nextBlock - 1]))
            if !failed, !answer.ready, shown == "(no output)" {
                // A block that only assigns is how many models work; a second turn that shows
                // nothing is not.
                turnSilentCells += 1
                if lastTurnSilent {
                    assist(.printedNothing, Prompts.printedNothing(lastAssigned: Self.lastAssignedName(in: blocks[nextBlock - 1])))
                }
            } else if !failed, !answer.ready, Self.emptyResults.contains(shown) {
                assist(.foundNothing, Prompts.foundNothing(shown))
            }
        }
        if nextBlock > 0, nextBlock <= blocks.count, !answer.ready {
            let code = blocks[nextBlock - 1].split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            // A traceback names the cell (`File "<cell 3.1>"`), which differs on every run.
            let key = [code.joined(separator: "\n"), String(body).replacing(/<cell [0-9.]+>/, with: "<cell>")]
            turnCells += 1
            let earlierRuns = ran[key, default: 0]
            ran[key] = earlierRuns + 1
            if earlierRuns >= (failed ? 1 : Self.repeatsBeforeNote) {
                assist(.repeatedCell, Prompts.repeatedCell(output: String(body), failed: failed))
                // A repeated failure is told to change the code, not asked for an answer.
                if !failed { turnRepeats += 1 }
            }
            if !failed, !shown.isEmpty, shown != "(no output)", shown.count <= Self.quotedOutputCharacters {
                recentOutputs.removeAll { $0 == shown }
                recentOutputs.append(shown)
                if recentOutputs.count > 2 { recentOutputs.removeFirst() }
            }
        }
        if !answer.content.isEmpty { bestAnswer = answer.content }
        if answer.ready {
            guard let problem = refusal(of: answer.content) else {
                submittedByCode = true
                return finishing(answer.content)
            }
            assist(.refusals, Prompts.refusedAnswer(problem))
        }
        if failed {
            if let stop = countError() { return stop }
        } else {
            consecutiveErrors = 0
        }
        return afterBlocks()
    }

    mutating func variableResolved(name: String, value: String?) -> Action {
        let fallback = literalFallback
        literalFallback = nil
        if value == nil, let text = fallback {
            return finishOrRefuse(text, as: "FINAL(\(text))")
        }
        guard let value else {
            feedback.append(.engine(Prompts.missingFinalVariable(name)))
            return nextTurn()
        }
        return finishOrRefuse(value, as: "FINAL_VAR(\(name))")
    }

    /// Finishes with `answer`, or refuses it back to the model (saying which `submission` it
    /// was) when ``problem(with:)`` finds it unusable.
    private mutating func finishOrRefuse(_ answer: String, as submission: String) -> Action {
        guard let problem = refusal(of: answer) else {
            submittedByCode = false
            return finishing(answer)
        }
        assist(.refusals, Prompts.refusedAnswer("\(submission): " + problem))
        return nextTurn()
    }

    /// `.check(answer)` when the answer is to be questioned if ungrounded (once, outside
    /// refinement, with a turn left to answer again), else `.finish(answer)`.
    private func finishing(_ answer: String) -> Action {
        assists.contains(.grounding) && !questioned && !refining && iteration < maxIterations ? .check(answer) : .finish(answer)
    }

    /// What grounds `answer`: the outputs it must be in (`seen`), whether code submitted it, and
    /// whether it was written into the submitting code (``Grounding/writtenInSubmission(_:blocks:)``).
    func groundingInput(for answer: String, query: String?) -> (seen: [String], byCode: Bool, preset: Bool) {
        let byCode = submittedByCode
        // A value written into the submitting code was chosen before its block's output was
        // seen: only earlier outputs ground it. The query's own words may be echoed in an
        // answer, but do not ground a value written into the code ("'praise' or 'billing'?"
        // would ground both).
        let preset = byCode && Grounding.writtenInSubmission(answer, blocks: blocks)
        let seen = preset ? Array(evidence.prefix(evidenceBeforeTurn)) : evidence + (query.map { [$0] } ?? [])
        return (seen, byCode, preset)
    }

    /// Takes `answer` when nothing is `missing` from what the model saw; otherwise questions it
    /// once (``Assists/Assist/grounding``) and asks for another turn.
    mutating func checked(_ answer: String, missing: [String]) -> Action {
        guard !missing.isEmpty else { return .finish(answer) }
        questioned = true
        let input = groundingInput(for: answer, query: nil)
        feedback.append(.assist(.grounding, input.preset ? Prompts.presetAnswer(answer)
            : input.byCode ? Prompts.unseenAnswer(missing: missing) : Prompts.ungroundedAnswer(missing: missing)))
        return nextTurn()
    }

    /// Why `answer` is refused (``problem(with:)``), or `nil` when it is taken: always, without
    /// the ``Assists/Assist/refusals`` assist.
    func refusal(of answer: String) -> String? {
        assists.contains(.refusals) ? Self.problem(with: answer) : nil
    }

    /// Why `answer` cannot be the run's answer, or `nil` when it can: an empty answer, or one of
    /// the placeholders the engine's own instructions write (``placeholders``) copied back, is
    /// refused and the model is told so, instead of ending the run with it. Anything else is an
    /// answer, however short: `[]`, `0`, `none` and `no` are what many tasks ask for.
    static func problem(with answer: String) -> String? {
        let text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return "the answer is empty" }
        if text == answerItself { return "answer[\"content\"] holds the answer dict itself, not an answer" }
        if placeholders.contains(placeholderForm(of: text)) { return "`\(text)` is a placeholder, not an answer" }
        return nil
    }

    /// `text` lowercased, without the quotes, backticks or angle brackets around it.
    private static func placeholderForm(of text: String) -> String {
        var form = text.lowercased()
        while let first = form.first, let last = form.last, form.count >= 2,
              (first == last && "\"'`".contains(first)) || (first == "<" && last == ">") {
            form = String(form.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
        }
        return form
    }

    /// What the REPL reads as `answer["content"]` when it is the `answer` dict itself
    /// (repl_support.py's `ANSWER_ITSELF`): Qwen2.5-Coder-1.5B wrote `answer['content'] = answer`
    /// and the dict's str, `{'content': {...}, 'ready': True}`, ended a 32K run with exit 0.
    static let answerItself = "<the answer dict itself>"

    /// The placeholders the engine's own text writes where an answer goes (Prompts: the system
    /// prompt's `FINAL(your answer)` and `<your answer as a string>`, the notes' `FINAL(…)`,
    /// `FINAL(the answer itself)` and "the value itself"), the protocol's own names (`answer`,
    /// the dict, and the markers), and `Ellipsis`, the str of `FINAL(...)` written in code.
    /// Matched whole, in any case, without surrounding quotes or angle brackets;
    /// docs/repl-protocol.md lists them.
    static let placeholders: Set<String> = [
        "your answer", "your answer as a string", "the answer itself", "the value itself",
        "...", "…", "answer", "final", "final_var", "ellipsis",
    ]


    /// Takes the feedback for the next user message.
    mutating func takeFeedback() -> [Feedback] {
        defer { feedback = [] }
        return feedback
    }

    private mutating func afterBlocks() -> Action {
        if nextBlock < blocks.count {
            nextBlock += 1
            return .execute(cell: nextBlock, code: blocks[nextBlock - 1])
        }
        let stated = final == nil ? statedAnswer : nil
        statedAnswer = nil
        switch final ?? stated {
        case .variableOrText(let text)?:
            // `FINAL(result)` after `result = ...`, or a bare name: small models mean the
            // variable. Its text is the answer only when the REPL has no variable of that name.
            literalFallback = text
            return .resolveVariable(text)
        case .text(let text)?:
            return finishOrRefuse(text, as: final != nil ? "FINAL(\(text))" : "your answer `\(text)`")
        case .variable(let name)?:
            return .resolveVariable(name)
        case nil:
            return nextTurn()
        }
    }

    /// `output` without the lines `code` printed as string literals written in it
    /// (`print("The label … is 'question'.")`): Qwen2.5-Coder-1.5B printed its claim so, and the
    /// claim then counted as seen. Values computed and printed (`print(n)`, f-strings) stay.
    static func evidence(output: String, code: String) -> String {
        let printed = Set(code.matches(of: /print\(\s*[rRuU]?(?:"([^"\\\n]*)"|'([^'\\\n]*)')\s*\)/).compactMap { match in
            (match.output.1 ?? match.output.2).map(String.init)
        })
        guard !printed.isEmpty else { return output }
        return output.split(separator: "\n", omittingEmptySubsequences: false).filter { !printed.contains(String($0)) }.joined(separator: "\n")
    }

    /// Outputs that say a search or count found nothing, which for small models is most often
    /// a pattern that does not fit the data (`record[2] == 'praise'` against ` label: praise `).
    static let emptyResults: Set<String> = ["0", "[]", "{}", "set()", "None", "''"]

    /// The name the last top-level assignment of `code` binds (`result = …`), if any.
    static func lastAssignedName(in code: String) -> String? {
        code.split(separator: "\n").compactMap { line in
            line.firstMatch(of: /^([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]+)?=[^=]/).map { String($0.output.1) }
        }.last { $0 != "answer" && $0 != "context" }
    }

    /// The longest output an answer-now request quotes.
    static let quotedOutputCharacters = 300

    private mutating func countError() -> Action? {
        consecutiveErrors += 1
        if let max = maxConsecutiveErrors, consecutiveErrors >= max { return .stop(.consecutiveErrors) }
        return nil
    }

    private mutating func nextTurn() -> Action {
        let stalled = turnCells > 0 && turnRepeats == turnCells && final == nil
        lastTurnSilent = turnCells > 0 && turnSilentCells == turnCells
        turnSilentCells = 0
        stalledTurns = stalled ? stalledTurns + 1 : 0
        askingForAnswer = assists.contains(.answerNow) && stalledTurns >= Self.stalledTurnsBeforeAsking
        if askingForAnswer { stalledTurns = 0 }
        evidenceBeforeTurn = evidence.count
        answering = askingForAnswer || toldToSubmit
        toldToSubmit = false
        statedAnswer = nil
        turnCells = 0
        turnRepeats = 0
        guard iteration < maxIterations else { return .stop(.iterations) }
        iteration += 1
        blocks = []
        nextBlock = 0
        final = nil
        return .callModel(iteration: iteration)
    }
}
