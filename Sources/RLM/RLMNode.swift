import Logging
import PythonRuntime
import Synchronization
import Tracing

/// What a node produced.
struct NodeOutcome: Sendable {
    var answer: String
    var iterations: Int
}

/// One RLM in the tree: a model driving a REPL through ``RLMLoop`` until it answers or a limit ends it.
final class RLMNode: Sendable {
    let tree: RunTree
    let info: NodeInfo
    let model: any LanguageModel

    private struct Progress {
        var messages: [ChatMessage] = []
        var bestAnswer: String?
        var iterations = 0
        var refinedAnswer: String?
        var recentOutputs: [String] = []
        var evidence: [String] = []
    }

    private let progress = Mutex(Progress())

    init(tree: RunTree, info: NodeInfo, model: any LanguageModel) {
        self.tree = tree
        self.info = info
        self.model = model
    }

    /// The last non-empty `answer["content"]`, kept for limit errors.
    var bestAnswer: String? { progress.withLock { $0.bestAnswer } }
    /// The conversation so far, for a final-answer request.
    var messages: [ChatMessage] { progress.withLock { $0.messages } }
    /// Turns taken so far.
    var iterations: Int { progress.withLock { $0.iterations } }
    /// The latest short outputs of cells that ran without error (``RLMLoop/recentOutputs``),
    /// for a final-answer request to quote.
    var recentOutputs: [String] { progress.withLock { $0.recentOutputs } }
    /// What the node's cells showed, for grounding a final answer (``RLMLoop/evidence``).
    var evidence: [String] { progress.withLock { $0.evidence } }
    /// The latest answer once refinement has begun (``RLMConfiguration/refinement``): what a
    /// limit during refinement leaves as the result.
    var refinedAnswer: String? { progress.withLock { $0.refinedAnswer } }

    /// Runs a node with a REPL of its own, closed when it ends.
    func runFresh(query: String?, context: RLMContext) async throws -> NodeOutcome {
        let configuration = tree.configuration
        let binding = REPLBinding(node: info, tree: tree)
        let repl = try await REPLEnvironment(name: "rlm\(info.id)", configuration: configuration, binding: binding)
        do {
            let description = try await repl.addContext(context, index: 0)
            let outcome = try await run(query: query, contextDescription: description, repl: repl, binding: binding, persistent: false)
            await repl.close()
            return outcome
        } catch {
            await repl.close()
            throw error
        }
    }

    /// Runs the loop on a prepared REPL.
    func run(
        query: String?, contextDescription: String, repl: REPLEnvironment, binding: REPLBinding, persistent: Bool
    ) async throws -> NodeOutcome {
        let configuration = tree.configuration
        let events = tree.events
        let telemetry = tree.telemetry
        // The node's span is a child of the run's, or of the cell that started this child RLM.
        let nodeSpan = telemetry.startSpan("rlm.node")
        nodeSpan.attributes["rlm.node"] = info.id
        nodeSpan.attributes["rlm.depth"] = info.depth
        nodeSpan.attributes["gen_ai.request.model"] = model.modelName
        var iterationSpan: (any Span)?
        var logger = telemetry.logger(for: info)
        defer {
            binding.enter(nil)
            iterationSpan?.end()
            nodeSpan.end()
        }
        events.emit(info, .nodeStarted(query: query, context: contextDescription))
        let assists = configuration.assists
        let swiftPrompts = assists.contains(.swiftPrompts)
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
            let characters = assists.contains(.contextPreview) ? configuration.contextPreviewCharacters : 0
            var preview = try await repl.contextPreview(characters: characters)
            preview.start = events.redact(preview.start)
            preview.middle = preview.middle.map { events.redact($0) }
            first = Prompts.firstUserMessage(query: query, contextDescription: contextDescription, preview: preview)
        } else {
            first = Prompts.paperFirstMessage(contextDescription: contextDescription)
        }
        var messages: [ChatMessage] = [.system(system), .user(first)]
        events.emit(info, .messageSent(iteration: 0, role: .system, text: system, transient: false))
        events.emit(info, .messageSent(iteration: 0, role: .user, text: first, transient: false))
        var loop = RLMLoop(
            maxIterations: configuration.maxIterations, maxConsecutiveErrors: configuration.budget.maxConsecutiveErrors, assists: assists)
        var action = loop.start()
        var cell = 0
        var questionedAnswer = false

        func remember() {
            let best = loop.bestAnswer
            let iteration = loop.iteration
            let outputs = loop.recentOutputs
            let evidence = loop.evidence
            progress.withLock {
                $0.messages = messages
                if let best { $0.bestAnswer = best }
                $0.iterations = iteration
                $0.recentOutputs = outputs
                $0.evidence = evidence
            }
        }

        // Refinement (root only): where it stands, the prompt for the next turn, and the turn
        // that made the current scratch update (its cells have run once the loop asks again).
        let refinementPlan = info.depth == 0 ? configuration.refinement : nil
        var refining: RefinementState?
        var pendingPrompt: String?
        var scratchTurn: Int?

        /// Adds a user message to the conversation, for the request of turn `iteration`.
        func send(_ text: String, iteration: Int) {
            messages.append(.user(text))
            events.emit(info, .messageSent(iteration: iteration, role: .user, text: text, transient: false))
        }

        /// Turns what the last turn's cells and the engine said into the next user messages:
        /// with the engine's prompts one message, which ends by asking to go on; in the paper's
        /// layout one message per cell, quoting its code, with any assists' words after it.
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
                        parts = [Prompts.paperCellMessage(code: code, output: Self.paperOutput(output))]
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

        /// Prepares the REPL and the prompt for the refinement phase that comes next.
        func beginRefinementPhase() async throws {
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
        func judge(_ judge: Refinement.HaltingJudge, answer: String) async throws -> Double? {
            let response = try await tree.call(
                judge.model, [.user(Prompts.haltingJudge(query: query, answer: answer))], depth: info.depth, limited: false,
                span: iterationSpan ?? nodeSpan)
            return Refinement.probability(in: response.text)
        }

        /// One model turn. When the server refuses the conversation as too long (the estimate
        /// let too much through, or the window is unknown), more is left out and the turn is
        /// tried again while anything can go.
        func callModel(iteration: Int) async throws -> ModelResponse {
            let info = self.info
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
                    return try await ServiceContext.withValue(span.context) {
                        try await tree.call(
                            model, messages + (turnPrompt.map { [.user($0)] } ?? []), depth: info.depth, limited: info.depth > 0,
                            cached: configuration.cache?.includesRootTurns == true,
                            span: span, onText: stream)
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

        while true {
            if Task.isCancelled {
                remember()
                throw CancellationError()
            }
            switch action {
            case .callModel(let iteration):
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
                    action = loop.modelFailed(String(describing: error))
                    continue
                }
                events.emit(info, .modelReplied(iteration: iteration, text: response.text, usage: response.usage, latency: .now - start))
                messages.append(.assistant(response.text))
                if let state = refining, case .scratch = state.phase { scratchTurn = iteration }
                action = loop.modelReplied(response.text)

            case .execute(let index, let code):
                cell += 1
                let cellSpan = telemetry.startSpan("rlm.cell", context: (iterationSpan ?? nodeSpan).context)
                if cellSpan.isRecording { cellSpan.attributes["rlm.cell"] = cell }
                binding.enter(CellScope(context: cellSpan.context, logger: logger))
                let outcome: REPLEnvironment.CellOutcome
                do {
                    outcome = try await repl.run(code) { state in
                        if !state.content.isEmpty { progress.withLock { $0.bestAnswer = state.content } }
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
                if outcome.result.status == .abandoned {
                    logger.warning("a cell could not be stopped; starting a fresh REPL", metadata: ["rlm.cell": "\(cell)"])
                }
                var output = events.redact(Self.describe(outcome, cell: index, timeout: configuration.execTimeout, assists: assists))
                for (assist, text) in Self.notes(on: outcome, assists: assists) {
                    events.emit(info, .assisted(iteration: loop.iteration + 1, assist: assist, text: text))
                }
                if outcome.result.status == .abandoned {
                    // The stuck code still runs on its thread; carry on in a fresh REPL if one
                    // can start (it cannot while that code holds the interpreter).
                    do {
                        // A fresh REPL needs time to start on a busy host (a worker its process, an
                        // in-process REPL its turns on the GIL); a stuck in-process call that holds
                        // the GIL keeps one from starting at all, and then the run ends here.
                        let limit = max(configuration.execTimeout, .seconds(10))
                        try await Self.withTimeLimit(limit) { try await repl.restart() }
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
                    output += "\n[the REPL was restarted: every variable is lost; `context` and the functions are bound again]"
                }
                events.emit(info, .codeExecuted(
                    iteration: loop.iteration, cell: cell, code: code, output: output,
                    status: RLMEvent.CellStatus(outcome.result.status), duration: outcome.result.duration))
                action = loop.cellFinished(
                    output: output, failed: outcome.result.status != .completed, answer: outcome.answer)
                remember()

            case .resolveVariable(let name):
                action = loop.variableResolved(name: name, value: try await repl.variable(named: name))

            case .finish(let unredacted):
                if configuration.groundAnswers, refining == nil, !questionedAnswer, loop.iteration < configuration.maxIterations {
                    let byCode = loop.submittedByCode
                    // A value written into the submitting code was chosen before its block's
                    // output was seen: only earlier outputs ground it.
                    let preset = byCode && Grounding.writtenInSubmission(unredacted, blocks: loop.replyBlocks)
                    // The query's own words may be echoed in an answer, but do not ground a
                    // value written into the code: "'praise' or 'billing'?" would ground both.
                    let seen = preset ? Array(loop.evidence.prefix(loop.evidenceBeforeTurn)) : loop.evidence + (query.map { [$0] } ?? [])
                    let missing = try await Grounding.missing(from: unredacted, seen: seen, repl: repl, inContextCounts: !byCode)
                    if !missing.isEmpty {
                        questionedAnswer = true
                        logger.debug("answer questioned as ungrounded", metadata: ["rlm.missing": "\(missing.count)"])
                        // Not taken yet: the next cell must not submit it again by itself.
                        if byCode { try await repl.withdrawSubmission() }
                        action = loop.question(
                            preset ? Prompts.presetAnswer(unredacted)
                                : byCode ? Prompts.unseenAnswer(missing: missing) : Prompts.ungroundedAnswer(missing: missing))
                        continue
                    }
                }
                var answer = events.redact(unredacted)
                if let plan = refinementPlan {
                    if var state = refining {
                        if case .answer(let step) = state.phase {
                            let (changed, halt) = state.answered(answer)
                            refining = state
                            progress.withLock { $0.refinedAnswer = answer }
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
                            if let reason {
                                events.emit(info, .refinementFinished(steps: step, reason: reason))
                            } else {
                                try await beginRefinementPhase()
                                action = loop.resume()
                                continue
                            }
                        } else {
                            // An answer in a scratch turn ends that update; the answer is the
                            // answer update's to give.
                            state.scratchDone()
                            refining = state
                            try await beginRefinementPhase()
                            action = loop.resume()
                            continue
                        }
                    } else {
                        // The first answer: refinement begins.
                        refining = RefinementState(plan: plan, firstAnswer: answer)
                        progress.withLock { $0.refinedAnswer = answer }
                        try await beginRefinementPhase()
                        action = loop.resume()
                        continue
                    }
                    answer = refining?.answer ?? answer
                }
                nodeSpan.attributes["rlm.outcome"] = "answered"
                logger.debug("node answered")
                remember()
                events.emit(info, .answer(text: answer, iterations: loop.iteration))
                return NodeOutcome(answer: answer, iterations: loop.iteration)

            case .stop(let limit):
                nodeSpan.attributes["rlm.outcome"] = "limit: \(limit.rawValue)"
                logger.notice("limit reached", metadata: ["rlm.limit": "\(limit.rawValue)"])
                takeFeedback(for: loop.iteration + 1)
                remember()
                events.emit(info, .limitReached(limit: limit, partialAnswer: loop.bestAnswer))
                var error = RLMError.limitReached(limit)
                error.partialAnswer = loop.bestAnswer
                throw error
            }
        }
    }

    /// Runs `body`, cancelling it when `limit` passes first.
    static func withTimeLimit(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            defer { group.cancelAll() }
            guard try await group.next() == true else { throw CancellationError() }
        }
    }

    /// The assists' notes on a cell's outcome (``Assists/Assist/pastedContext``,
    /// ``Assists/Assist/restoredNames``), as ``describe(_:cell:timeout:assists:)`` ends with them.
    static func notes(on outcome: REPLEnvironment.CellOutcome, assists: Assists) -> [(Assists.Assist, String)] {
        var notes: [(Assists.Assist, String)] = []
        if outcome.skippedPastedContext {
            notes.append((.pastedContext, "[note: the statement that set `context` to text written in your code was not run: `context` already holds the whole input, and what the first message showed is only a sample of it. The rest of the block ran on the whole `context`]"))
        }
        if !outcome.restoredNames.isEmpty, assists.contains(.restoredNames) {
            let names = outcome.restoredNames.map { "`\($0)`" }.joined(separator: ", ")
            notes.append((.restoredNames, outcome.restoredNames.count == 1
                ? "[note: \(names) is reserved and was restored]"
                : "[note: \(names) are reserved and were restored]"))
        }
        return notes
    }

    /// A cell's output as the paper's layout shows it (``Prompts/paperCellMessage(code:output:)``):
    /// without the header of a cell that completed, and `No output` for none.
    static func paperOutput(_ described: String) -> String {
        let lines = described.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        guard let header = lines.first, header.hasPrefix("[block "), header.hasSuffix(" output]") else { return described }
        let body = lines.count > 1 ? String(lines[1]) : ""
        return body == "(no output)" ? "No output" : body
    }

    /// What the model is told about a cell; `cell` is the block's place in the reply.
    static func describe(_ outcome: REPLEnvironment.CellOutcome, cell: Int, timeout: Duration, assists: Assists = .default) -> String {
        let result = outcome.result
        var parts: [String] = []
        let header: String
        switch result.status {
        case .completed: header = "[block \(cell) output]"
        case .failed: header = "[block \(cell) raised \(result.error?.typeName ?? "an exception")]"
        case .timedOut:
            header = "[block \(cell) was stopped: it ran past the \(timeout.components.seconds)-second limit per cell. Variables it assigned before that are kept.]"
        case .abandoned where result.error?.typeName == PythonWorker.endedTypeName:
            header = "[block \(cell) ended its REPL: \(result.error?.message ?? "the REPL process ended")]"
        case .abandoned:
            header = "[block \(cell) could not be stopped after its \(timeout.components.seconds)-second limit (a long C-level call such as a huge number or a catastrophic regular expression)]"
        }
        parts.append(header)
        if !result.stdout.isEmpty { parts.append(result.stdout.hasSuffix("\n") ? String(result.stdout.dropLast()) : result.stdout) }
        if !result.stderr.isEmpty { parts.append("[stderr]\n" + result.stderr) }
        if let error = result.error, result.status != .completed, error.typeName != PythonWorker.endedTypeName {
            let trace = error.traceback.isEmpty ? "\(error.typeName): \(error.message)" : error.traceback
            parts.append(trace.hasSuffix("\n") ? String(trace.dropLast()) : trace)
        }
        if result.status == .completed && result.stdout.isEmpty && result.stderr.isEmpty {
            parts.append("(no output)")
        }
        parts += notes(on: outcome, assists: assists).map(\.1)
        return parts.joined(separator: "\n")
    }
}

extension RLMEvent.CellStatus {
    init(_ status: ExecutionResult.Status) {
        switch status {
        case .completed: self = .completed
        case .failed: self = .failed
        case .timedOut: self = .timedOut
        case .abandoned: self = .abandoned
        }
    }
}
