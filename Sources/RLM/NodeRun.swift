import Logging
import PythonRuntime
import Tracing

/// One run of a node's loop: its conversation, its ``RLMLoop``, refinement, and the effects each
/// of the loop's actions asks for (a model turn, a cell, a variable, a grounding check). Owned by
/// the one task that runs ``RLMNode/run(query:contextDescription:repl:binding:persistent:)``.
final class NodeRun {
    let node: RLMNode
    let query: String?
    let repl: REPLEnvironment
    let binding: REPLBinding
    private let configuration: RLMConfiguration
    private let swiftPrompts: Bool
    private let nodeSpan: any Span
    private var iterationSpan: (any Span)?
    private var logger: Logger
    private(set) var messages: [ChatMessage]
    var loop: RLMLoop
    /// Cells run so far, across turns.
    private var cells = 0
    // Refinement (root only): where it stands, the prompt for the next turn, and the turn that
    // made the current scratch update (its cells have run once the loop asks again).
    private let refinementPlan: Refinement?
    private var refining: RefinementState? {
        didSet { loop.refining = refining != nil }
    }
    private var pendingPrompt: String?
    private var scratchTurn: Int?

    private var info: NodeInfo { node.info }
    private var events: EventSink { node.tree.events }
    private var telemetry: Telemetry { node.tree.telemetry }
    private var model: any LanguageModel { node.model }

    /// Opens the conversation: the system prompt and the first message, each recorded.
    init(node: RLMNode, query: String?, contextDescription: String, repl: REPLEnvironment, binding: REPLBinding, persistent: Bool) async throws {
        self.node = node
        self.query = query
        self.repl = repl
        self.binding = binding
        let configuration = node.tree.configuration
        self.configuration = configuration
        let assists = configuration.assists
        swiftPrompts = assists.contains(.swiftPrompts)
        let telemetry = node.tree.telemetry
        // The node's span is a child of the run's, or of the cell that started this child RLM.
        nodeSpan = telemetry.startSpan("rlm.node")
        nodeSpan.attributes["rlm.node"] = node.info.id
        nodeSpan.attributes["rlm.depth"] = node.info.depth
        nodeSpan.attributes["gen_ai.request.model"] = node.model.modelName
        logger = telemetry.logger(for: node.info)
        refinementPlan = node.info.depth == 0 ? configuration.refinement : nil
        loop = RLMLoop(
            maxIterations: configuration.maxIterations, maxConsecutiveErrors: configuration.budget.maxConsecutiveErrors, assists: assists)
        messages = []
        node.tree.events.emit(node.info, .nodeStarted(query: query, context: contextDescription))
        do {
            try await openConversation(contextDescription: contextDescription, persistent: persistent)
        } catch {
            end()
            throw error
        }
    }

    private func openConversation(contextDescription: String, persistent: Bool) async throws {
        let promptInput = Prompts.SystemPromptInput(
            contextDescription: contextDescription, depth: info.depth, maxDepth: configuration.maxDepth,
            maxOutputCharacters: configuration.maxOutputCharacters,
            execTimeoutSeconds: Int(configuration.execTimeout.components.seconds),
            modelNames: configuration.models.keys.sorted(),
            tools: configuration.tools.map { ($0.name, $0.description) },
            extraInstructions: configuration.extraInstructions, persistent: persistent,
            sandboxed: configuration.isolation.level != .unrestricted,
            subcallWindow: (configuration.subModel ?? configuration.rootModel).contextWindow,
            mappedContext: repl.hasMappedContext)
        let system = configuration.systemPrompt ?? (swiftPrompts ? Prompts.system(promptInput) : Prompts.paperSystem(promptInput))
        let first: String
        if swiftPrompts {
            let characters = configuration.assists.contains(.contextPreview) ? configuration.contextPreviewCharacters : 0
            var preview = try await repl.contextPreview(characters: characters)
            preview.start = events.redact(preview.start)
            preview.middle = preview.middle.map { events.redact($0) }
            first = Prompts.firstUserMessage(query: query, contextDescription: contextDescription, preview: preview)
        } else {
            first = Prompts.paperFirstMessage(contextDescription: contextDescription)
        }
        messages = [.system(system), .user(first)]
        events.emit(info, .messageSent(iteration: 0, role: .system, text: system, transient: false))
        events.emit(info, .messageSent(iteration: 0, role: .user, text: first, transient: false))
    }

    /// Ends the node's spans.
    func end() {
        binding.enter(nil)
        iterationSpan?.end()
        nodeSpan.end()
    }

    /// Publishes where the run stands (for limit errors and the final-answer request).
    func remember() {
        let best = loop.bestAnswer
        let iteration = loop.iteration
        let outputs = loop.recentOutputs
        let evidence = loop.evidence
        let messages = messages
        node.remember { progress in
            progress.messages = messages
            if let best { progress.bestAnswer = best }
            progress.iterations = iteration
            progress.recentOutputs = outputs
            progress.evidence = evidence
        }
    }

    // MARK: - A model turn

    /// `.callModel`: the next user messages, then the model's reply.
    func turn(_ iteration: Int) async throws -> RLMLoop.Action {
        if iteration > 1 { events.emit(info, .iterationFinished(iteration: iteration - 1)) }
        if var state = refining, case .scratch = state.phase, scratchTurn != nil {
            // The scratch update's turn and its cells are done.
            state.scratchDone()
            refining = state
            try await beginRefinementPhase()
        }
        takeFeedback(for: iteration)
        remember()
        events.emit(info, .iterationStarted(iteration: iteration))
        iterationSpan?.end()
        let span = telemetry.startSpan("rlm.iteration", context: nodeSpan.context)
        span.attributes["rlm.iteration"] = iteration
        iterationSpan = span
        logger = telemetry.logger(for: info, iteration: iteration)
        logger.debug("turn started")
        if let window = model.contextWindow, let compaction = HistoryCompaction.compact(&messages, window: window) {
            events.emit(info, .historyCompacted(
                iteration: iteration, removedMessages: compaction.removedMessages, estimatedTokens: compaction.estimatedTokens))
            logger.info("conversation compacted to fit the context window", metadata: [
                "rlm.removed_messages": "\(compaction.removedMessages)", "rlm.estimated_tokens": "\(compaction.estimatedTokens)",
            ])
            remember()
        }
        let start = ContinuousClock.now
        let response: ModelResponse
        do {
            response = try await callModel(iteration: iteration)
        } catch var error as RLMError {
            // A budget limit the call ran into: the root reports it (see Limit.isNodeLimit).
            error.partialAnswer = loop.bestAnswer
            throw error
        } catch {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            guard configuration.budget.maxConsecutiveErrors != nil else {
                throw RLMError(
                    code: .modelFailed, message: "the model '\(model.modelName)' failed: \(error)",
                    partialAnswer: loop.bestAnswer, cause: error)
            }
            return loop.modelFailed(String(describing: error))
        }
        events.emit(info, .modelReplied(iteration: iteration, text: response.text, usage: response.usage, latency: .now - start))
        messages.append(.assistant(response.text))
        if let state = refining, case .scratch = state.phase { scratchTurn = iteration }
        return loop.modelReplied(response.text)
    }

    /// Adds a user message to the conversation, for the request of turn `iteration`.
    private func send(_ text: String, iteration: Int) {
        messages.append(.user(text))
        events.emit(info, .messageSent(iteration: iteration, role: .user, text: text, transient: false))
    }

    /// Turns what the last turn's cells and the engine said into the next user messages: with the
    /// engine's prompts one message, which ends by asking to go on; in the paper's layout one
    /// message per cell, quoting its code, with any assists' words after it.
    func takeFeedback(for iteration: Int) {
        let feedback = loop.takeFeedback()
        for case .assist(let assist, let text) in feedback {
            events.emit(info, .assisted(iteration: iteration, assist: assist, text: text))
        }
        var closing: String?
        if let prompt = pendingPrompt {
            pendingPrompt = nil
            closing = prompt
        } else if loop.askingForAnswer {
            logger.debug("the model showed nothing new for \(RLMLoop.stalledTurnsBeforeAsking) turns; asking for its answer")
            let request = Prompts.answerNow(query: query, outputs: loop.recentOutputs)
            events.emit(info, .assisted(iteration: iteration, assist: .answerNow, text: request))
            closing = request
        }
        guard swiftPrompts else {
            var parts: [String] = []
            for item in feedback {
                if case .output(let code, let output) = item {
                    if !parts.isEmpty { send(parts.joined(separator: "\n\n"), iteration: iteration) }
                    parts = [Prompts.paperCellMessage(code: code, output: RLMNode.paperOutput(output))]
                } else {
                    parts.append(item.text)
                }
            }
            if let closing { parts.append(closing) }
            if !parts.isEmpty { send(parts.joined(separator: "\n\n"), iteration: iteration) }
            return
        }
        let texts = feedback.map(\.text)
        if let closing {
            send((texts.isEmpty ? "" : texts.joined(separator: "\n\n") + "\n\n") + closing, iteration: iteration)
        } else if !texts.isEmpty {
            send(texts.joined(separator: "\n\n") + "\n\n" + Prompts.continueMessage(query: query), iteration: iteration)
        }
    }

    /// One model call. When the server refuses the conversation as too long (the estimate let
    /// too much through, or the window is unknown), more is left out and the call is tried
    /// again while anything can go.
    private func callModel(iteration: Int) async throws -> ModelResponse {
        let info = info
        let events = events
        // The paper's per-turn prompt follows the conversation in this request only.
        let turnPrompt = swiftPrompts ? nil : Prompts.paperTurnPrompt(query: query, iteration: iteration)
        if let turnPrompt {
            events.emit(info, .messageSent(iteration: iteration, role: .user, text: turnPrompt, transient: true))
        }
        var stream: (@Sendable (String) -> Void)?
        if configuration.streamRootReplies && info.depth == 0 {
            stream = { @Sendable text in events.emit(info, .modelReplyDelta(iteration: iteration, text: text)) }
        }
        while true {
            do {
                let span = iterationSpan ?? nodeSpan
                let request = messages + (turnPrompt.map { [.user($0)] } ?? [])
                return try await ServiceContext.withValue(span.context) {
                    try await node.tree.call(
                        model, request, depth: info.depth, limited: info.depth > 0,
                        cached: configuration.cache?.includesRootTurns == true, span: span, onText: stream)
                }
            } catch let refusal as ContextWindowExceeded {
                logger.notice("the server refused the conversation as too long; compacting", metadata: ["rlm.model": "\(model.modelName)"])
                let estimate = TokenEstimate.tokens(in: messages)
                let window = model.contextWindow ?? ContextWindow(tokens: refusal.windowTokens ?? estimate)
                let budget = refusal.windowTokens.map { ContextWindow(tokens: $0, reservedForReply: window.reservedForReply).promptTokens }
                    ?? Int(Double(estimate) * HistoryCompaction.target)
                guard let compaction = HistoryCompaction.compact(&messages, window: window, force: true, budget: min(budget, estimate - 1)) else {
                    throw RLMError(
                        code: .modelFailed,
                        message: "the model '\(model.modelName)' refused the conversation as too long and nothing more can be left out: \(refusal)",
                        partialAnswer: loop.bestAnswer, cause: refusal)
                }
                events.emit(info, .historyCompacted(
                    iteration: iteration, removedMessages: compaction.removedMessages, estimatedTokens: compaction.estimatedTokens))
                remember()
            }
        }
    }

    // MARK: - A cell

    /// `.execute`: runs the reply's `index`-th block; an abandoned cell's REPL is replaced.
    func cell(_ index: Int, code: String) async throws -> RLMLoop.Action {
        cells += 1
        let cell = cells
        let assists = configuration.assists
        let cellSpan = telemetry.startSpan("rlm.cell", context: (iterationSpan ?? nodeSpan).context)
        if cellSpan.isRecording { cellSpan.attributes["rlm.cell"] = cell }
        binding.enter(CellScope(context: cellSpan.context, logger: logger))
        let outcome: REPLEnvironment.CellOutcome
        do {
            let node = node
            outcome = try await repl.run(code) { state in
                if !state.content.isEmpty { node.remember { $0.bestAnswer = state.content } }
            }
        } catch {
            binding.enter(nil)
            cellSpan.recordError(error)
            cellSpan.end()
            throw error
        }
        binding.enter(nil)
        let cellStatus = RLMEvent.CellStatus(outcome.result.status)
        if cellSpan.isRecording { cellSpan.attributes["rlm.cell.status"] = cellStatus.rawValue }
        cellSpan.end()
        telemetry.cell(status: cellStatus, duration: outcome.result.duration)
        logger.debug("cell ran", metadata: ["rlm.cell": "\(cell)", "rlm.status": "\(cellStatus.rawValue)", "rlm.duration": "\(outcome.result.duration)"])
        var output = events.redact(RLMNode.describe(outcome, cell: index, timeout: configuration.execTimeout, assists: assists))
        for (assist, text) in RLMNode.notes(on: outcome, assists: assists) {
            events.emit(info, .assisted(iteration: loop.iteration + 1, assist: assist, text: text))
        }
        if outcome.result.status == .abandoned {
            logger.warning("a cell could not be stopped; starting a fresh REPL", metadata: ["rlm.cell": "\(cell)"])
            try await replaceREPL(after: outcome, cell: cell, code: code, output: output)
            output += "\n[the REPL was restarted: every variable is lost; `context` and the functions are bound again]"
        }
        events.emit(info, .codeExecuted(
            iteration: loop.iteration, cell: cell, code: code, output: output,
            status: cellStatus, duration: outcome.result.duration))
        let next = loop.cellFinished(output: output, failed: outcome.result.status != .completed, answer: outcome.answer)
        remember()
        return next
    }

    /// The stuck code still runs on its thread (or its worker was killed): goes on in a fresh
    /// REPL if one can start (it cannot while that code holds the interpreter), else ends the
    /// node with ``Limit/unstoppableCode``.
    private func replaceREPL(after outcome: REPLEnvironment.CellOutcome, cell: Int, code: String, output: String) async throws {
        do {
            // A fresh REPL needs time to start on a busy host (a worker its process, an in-process
            // REPL its turns on the GIL); a stuck in-process call that holds the GIL keeps one
            // from starting at all, and then the run ends here.
            let limit = max(configuration.execTimeout, .seconds(10))
            let repl = repl
            try await RLMNode.withTimeLimit(limit) { try await repl.restart() }
        } catch {
            if Task.isCancelled { throw CancellationError() }
            events.emit(info, .codeExecuted(
                iteration: loop.iteration, cell: cell, code: code, output: output,
                status: .abandoned, duration: outcome.result.duration))
            remember()
            events.emit(info, .limitReached(limit: .unstoppableCode, partialAnswer: loop.bestAnswer))
            throw RLMError(
                code: .limitReached,
                message: "a code cell could not be stopped and no fresh REPL could start after it: \(output)",
                limit: .unstoppableCode, partialAnswer: loop.bestAnswer)
        }
    }

    // MARK: - Answers

    /// `.resolveVariable`: the REPL variable a `FINAL_VAR` (or `FINAL(name)`) named.
    func resolve(_ name: String) async throws -> RLMLoop.Action {
        loop.variableResolved(name: name, value: try await repl.variable(named: name))
    }

    /// `.check`: whether the answer's numbers (or words) are in what the model has seen
    /// (``Grounding``); a code submission questioned is withdrawn, so that the next cell does
    /// not submit it again by itself.
    func check(_ answer: String) async throws -> RLMLoop.Action {
        let input = loop.groundingInput(for: answer, query: query)
        let missing = try await Grounding.missing(from: answer, seen: input.seen, repl: repl, inContextCounts: !input.byCode)
        if !missing.isEmpty {
            logger.debug("answer questioned as ungrounded", metadata: ["rlm.missing": "\(missing.count)"])
            if input.byCode { try await repl.withdrawSubmission() }
        }
        return loop.checked(answer, missing: missing)
    }

    /// What `.finish` leads to: the node's outcome, or, while refinement goes on, the next action.
    enum Finish {
        case answered(NodeOutcome)
        case goOn(RLMLoop.Action)
    }

    /// `.finish`: the node's outcome, or the action that continues refinement.
    func finish(_ unredacted: String) async throws -> Finish {
        var answer = events.redact(unredacted)
        if let plan = refinementPlan {
            switch try await refine(answer, plan: plan) {
            case .answered(let refined): answer = refined
            case .goOn(let action): return .goOn(action)
            }
        }
        nodeSpan.attributes["rlm.outcome"] = "answered"
        logger.debug("node answered")
        remember()
        events.emit(info, .answer(text: answer, iterations: loop.iteration))
        return .answered(NodeOutcome(answer: answer, iterations: loop.iteration))
    }

    /// What refinement does with an answer: ends with the refined answer, or goes on.
    private enum Refined {
        case answered(String)
        case goOn(RLMLoop.Action)
    }

    /// Takes `answer` into refinement (``RLMConfiguration/refinement``): its first answer starts
    /// it; an answer update ends a step, and the halting rules or the judge end it; an answer in
    /// a scratch turn ends that update.
    private func refine(_ answer: String, plan: Refinement) async throws -> Refined {
        guard var state = refining else {
            refining = RefinementState(plan: plan, firstAnswer: answer)
            node.remember { $0.refinedAnswer = answer }
            return .goOn(try await continueRefinement())
        }
        guard case .answer(let step) = state.phase else {
            // An answer in a scratch turn ends that update; the answer is the answer update's to give.
            state.scratchDone()
            refining = state
            return .goOn(try await continueRefinement())
        }
        let (changed, halt) = state.answered(answer)
        refining = state
        node.remember { $0.refinedAnswer = answer }
        var reason = halt
        var score: Double?
        if halt == nil, let judgeModel = plan.judge {
            // A judge that fails only loses its vote; a limit or a cancellation ends the run.
            do {
                score = try await judge(judgeModel, answer: answer)
            } catch let error as RLMError where error.limit != nil {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                logger.warning("the halting judge failed; refinement goes on", metadata: ["rlm.error": "\(events.redact(String(describing: error)))"])
            }
            if let score, score >= judgeModel.threshold { reason = .judge }
        }
        events.emit(info, .refinementStep(step: step, answer: answer, changed: changed, judgeScore: score))
        logger.debug("refinement step ended", metadata: ["rlm.step": "\(step)", "rlm.changed": "\(changed)"])
        guard let reason else { return .goOn(try await continueRefinement()) }
        events.emit(info, .refinementFinished(steps: step, reason: reason))
        return .answered(refining?.answer ?? answer)
    }

    /// Prepares the next refinement phase and resumes the loop.
    private func continueRefinement() async throws -> RLMLoop.Action {
        try await beginRefinementPhase()
        return loop.resume()
    }

    /// Prepares the REPL and the prompt for the refinement phase that comes next.
    private func beginRefinementPhase() async throws {
        guard let state = refining else { return }
        try await repl.prepareRefinement(currentAnswer: state.answer)
        scratchTurn = nil
        switch state.phase {
        case .scratch(let step, let update):
            pendingPrompt = Prompts.refinementScratch(
                step: step, of: state.plan.maxSteps, update: update, of: state.plan.scratchUpdates, query: query, answer: state.answer)
        case .answer(let step):
            pendingPrompt = Prompts.refinementAnswer(step: step, of: state.plan.maxSteps)
        }
    }

    /// The halting judge's probability that `answer` is right; `nil` when its reply holds no number.
    private func judge(_ judge: Refinement.HaltingJudge, answer: String) async throws -> Double? {
        let response = try await node.tree.call(
            judge.model, [.user(Prompts.haltingJudge(query: query, answer: answer))], depth: info.depth, limited: false,
            span: iterationSpan ?? nodeSpan)
        return Refinement.probability(in: response.text)
    }

    // MARK: - A limit

    /// `.stop`: the error a limit ends the node with, once what the last turn said is recorded.
    func stopped(_ limit: Limit) -> RLMError {
        nodeSpan.attributes["rlm.outcome"] = "limit: \(limit.rawValue)"
        logger.notice("limit reached", metadata: ["rlm.limit": "\(limit.rawValue)"])
        takeFeedback(for: loop.iteration + 1)
        remember()
        events.emit(info, .limitReached(limit: limit, partialAnswer: loop.bestAnswer))
        var error = RLMError.limitReached(limit)
        error.partialAnswer = loop.bestAnswer
        return error
    }
}
