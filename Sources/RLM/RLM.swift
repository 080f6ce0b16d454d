import Foundation
import Logging
import PythonRuntime
import Tracing
import Synchronization

/// A Recursive Language Model: answers a query over a context far larger than a model's window.
///
/// The context lives in a Python REPL; the root model writes code to inspect it and calls
/// `llm_query` (a model call) or `rlm_query` (a child RLM) on pieces of it. Depth, iterations,
/// calls, tokens, cost and time are bounded by one ``Budget`` for the whole tree.
///
/// ```swift
/// let rlm = RLM(configuration: RLMConfiguration(rootModel: model))
/// let result = try await rlm.complete(query: "Which city is mentioned most?", context: .file(url))
/// print(result.answer, result.usage.total.costUSD)
/// ```
public struct RLM: Sendable {
    /// How runs work.
    public var configuration: RLMConfiguration

    /// Creates an RLM.
    public init(configuration: RLMConfiguration) {
        self.configuration = configuration
    }

    /// Answers `query` about `context`.
    ///
    /// - Parameters:
    ///   - trajectory: writes every event to a JSON Lines file as it happens.
    ///   - observer: called with every event, on the thread that produced it; keep it short.
    /// - Throws: ``RLMError`` (a limit, with the best answer so far; a failed model; a bad context)
    ///   or `CancellationError` when the task is cancelled.
    public func complete(
        query: String, context: RLMContext, trajectory: TrajectoryWriter? = nil,
        observer: (@Sendable (RLMEvent) -> Void)? = nil
    ) async throws -> RLMResult {
        let sink = EventSink(continuation: nil, trajectory: trajectory, observer: observer, start: .now, redact: Redactor(configuration))
        return try await Self.execute(configuration, query: query, context: context, sink: sink)
    }

    /// Starts answering `query` and returns at once with a live event stream.
    ///
    /// The stream keeps at most ``eventBufferLimit`` events its consumer has not read yet; a
    /// consumer that falls further behind loses the oldest of them (the result and the
    /// trajectory keep them).
    public func run(query: String, context: RLMContext, trajectory: TrajectoryWriter? = nil) -> RLMRun {
        let (stream, continuation) = AsyncStream<RLMEvent>.makeStream(bufferingPolicy: .bufferingNewest(Self.eventBufferLimit))
        let sink = EventSink(continuation: continuation, trajectory: trajectory, observer: nil, start: .now, redact: Redactor(configuration))
        let configuration = self.configuration
        let task = Task {
            try await Self.execute(configuration, query: query, context: context, sink: sink)
        }
        return RLMRun(events: stream, task: task)
    }

    /// How many unread events ``run(query:context:trajectory:)``'s stream keeps. 10,000.
    public static let eventBufferLimit = 10_000

    /// A conversation whose REPL persists across queries.
    public func session() -> RLMSession {
        RLMSession(configuration: configuration)
    }

    /// A conversation that continues from a snapshot (``RLMSession/snapshot()``), taken in this
    /// process or another: its turns, contexts and saved variables are back before its next turn.
    public func session(restoring snapshot: RLMSession.Snapshot) -> RLMSession {
        RLMSession(configuration: configuration, restoring: snapshot)
    }

    static func execute(_ configuration: RLMConfiguration, query: String, context: RLMContext, sink: EventSink) async throws -> RLMResult {
        defer { sink.finish() }
        try configuration.validate()
        let info = NodeInfo(id: 0, parentID: nil, depth: 0)
        let binding = REPLBinding(node: info)
        let repl: REPLEnvironment
        do {
            repl = try await REPLEnvironment(name: "rlm0", configuration: configuration, binding: binding)
        } catch let error as PythonError {
            throw RLMError(code: .pythonFailed, message: "the Python REPL could not start: \(error)", cause: error)
        }
        do {
            let direct = try DirectInput(configuration, query: query, context: context)
            let description = try await repl.addContext(context, index: 0)
            let result = try await runRoot(
                configuration, query: query, contextDescription: description, repl: repl, binding: binding,
                persistent: false, sink: sink, direct: direct)
            await repl.close()
            return result
        } catch {
            await repl.close()
            throw error
        }
    }

    /// Runs the root node on a prepared REPL, racing it against the budget and the deadline.
    static func runRoot(
        _ configuration: RLMConfiguration, query: String, contextDescription: String, repl: REPLEnvironment,
        binding: REPLBinding, persistent: Bool, sink: EventSink, direct: DirectInput? = nil
    ) async throws -> RLMResult {
        let start = ContinuousClock.now
        let telemetry = Telemetry(configuration: configuration)
        let runSpan = telemetry.startSpan("rlm.run")
        runSpan.attributes["rlm.root_model"] = configuration.rootModel.modelName
        runSpan.attributes["rlm.max_depth"] = configuration.maxDepth
        telemetry.logger.debug("run started", metadata: ["rlm.model": "\(configuration.rootModel.modelName)"])
        let (trips, tripContinuation) = AsyncStream<Limit>.makeStream()
        let tracker = BudgetTracker(budget: configuration.budget) { tripContinuation.yield($0) }
        let tree = RunTree(configuration: configuration, tracker: tracker, events: sink, telemetry: telemetry)
        let info = NodeInfo(id: tree.newNodeID(), parentID: nil, depth: 0)
        binding.bind(tree)
        let root = RLMNode(tree: tree, info: info, model: configuration.rootModel)

        enum Outcome: Sendable {
            case answered(NodeOutcome, direct: Bool)
            case failed(any Error)
            case tripped(Limit)
        }
        let outcome: Outcome = await ServiceContext.withValue(runSpan.context) { await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                do {
                    if let direct, direct.text != nil {
                        if let outcome = try await answerDirectly(
                            direct, query: query, contextDescription: contextDescription, tree: tree, sink: sink, info: info) {
                            return .answered(outcome, direct: true)
                        }
                    } else if let direct, let parts = direct.parts {
                        if let outcome = try await answerByScanning(
                            parts, direct, query: query, contextDescription: contextDescription, tree: tree, sink: sink, info: info) {
                            return .answered(outcome, direct: true)
                        }
                    } else if let direct {
                        sink.emit(info, .strategyChosen(strategy: .rlm, reason: direct.reason))
                    }
                    return .answered(try await root.run(
                        query: query, contextDescription: contextDescription, repl: repl, binding: binding, persistent: persistent), direct: false)
                } catch {
                    return .failed(error)
                }
            }
            group.addTask {
                for await limit in trips { return .tripped(limit) }
                return nil
            }
            if let deadline = configuration.budget.deadline {
                group.addTask {
                    try? await Task.sleep(for: deadline)
                    if !Task.isCancelled { tracker.trip(.deadline) }
                    return nil
                }
            }
            var first: Outcome?
            while first == nil, let next = await group.next() {
                first = next
            }
            group.cancelAll()
            return first ?? .failed(CancellationError())
        } }
        tripContinuation.finish()

        func finish(_ error: (any Error)?) {
            let usage = tracker.usage
            sink.emit(info, .runFinished(usage: usage, elapsed: .now - start, error: error.map { String(describing: $0) }))
            let outcome: String
            switch error {
            case nil: outcome = "answered"
            case let error as RLMError where error.code == .limitReached: outcome = "limit"
            case is CancellationError: outcome = "cancelled"
            default: outcome = "failed"
            }
            telemetry.run(outcome: outcome, duration: .now - start)
            if let limit = (error as? RLMError)?.limit { telemetry.limit(limit) }
            runSpan.attributes["rlm.outcome"] = outcome
            runSpan.attributes["rlm.calls"] = usage.total.calls
            runSpan.attributes["gen_ai.usage.input_tokens"] = usage.total.tokens.inputTokens
            runSpan.attributes["gen_ai.usage.output_tokens"] = usage.total.tokens.outputTokens
            runSpan.attributes["rlm.cost_usd"] = usage.total.costUSD
            if let error, outcome != "cancelled" { runSpan.recordError(error) }
            runSpan.end()
            let metadata: Logger.Metadata = [
                "rlm.outcome": "\(outcome)", "rlm.calls": "\(usage.total.calls)",
                "rlm.tokens": "\(usage.total.tokens.totalTokens)", "rlm.elapsed": "\(ContinuousClock.now - start)",
            ]
            if outcome == "failed" {
                telemetry.logger.warning("run failed: \(sink.redact(error.map { String(describing: $0) } ?? ""))", metadata: metadata)
            } else {
                telemetry.logger.info("run finished", metadata: metadata)
            }
        }

        var limit: Limit
        switch outcome {
        case .answered(let node, let direct):
            finish(nil)
            return RLMResult(
                answer: node.answer, usage: tracker.usage, iterations: node.iterations, elapsed: .now - start,
                events: sink.events, answeredAfterLimit: nil,
                strategy: direct ? .direct : .rlm)
        case .tripped(let tripped):
            limit = tripped
        case .failed(let error as RLMError) where error.code == .limitReached:
            limit = tracker.tripped ?? error.limit ?? .iterations
        case .failed(var error as RLMError):
            error.usage = tracker.usage
            error.partialAnswer = sink.redact(error.partialAnswer)
            error.message = sink.redact(error.message)
            finish(error)
            throw error
        case .failed(let error):
            if Task.isCancelled || error is CancellationError {
                finish(CancellationError())
                throw CancellationError()
            }
            finish(error)
            throw error
        }

        // A limit ended the run. The budget's limits are the tree's: reported here, once, whether
        // or not a final answer follows (a node's own were reported by that node).
        if !limit.isNodeLimit {
            sink.emit(info, .limitReached(limit: limit, partialAnswer: root.bestAnswer))
        }
        // During refinement the run already has an answer: the latest one is the result.
        if let refined = root.refinedAnswer, !Task.isCancelled {
            sink.emit(info, .answer(text: refined, iterations: root.iterations))
            finish(nil)
            return RLMResult(
                answer: refined, usage: tracker.usage, iterations: root.iterations, elapsed: .now - start,
                events: sink.events, answeredAfterLimit: limit, strategy: .rlm)
        }
        if configuration.finalAnswerOnLimit && limit != .deadline && !Task.isCancelled {
            var messages = root.messages
            let request = configuration.assists.contains(.swiftPrompts)
                ? Prompts.finalAnswerRequest(limit, outputs: root.recentOutputs) : Prompts.paperFinalAnswerRequest()
            messages.append(.user(request))
            sink.emit(info, .messageSent(iteration: root.iterations + 1, role: .user, text: request, transient: false))
            do {
                let asked = ContinuousClock.now
                let response = try await tree.call(configuration.rootModel, messages, depth: 0, limited: false, force: true)
                sink.emit(info, .modelReplied(iteration: root.iterations + 1, text: response.text, usage: response.usage, latency: .now - asked))
                if let found = try await forcedAnswer(in: response.text, repl: repl, configuration: configuration, sink: sink, info: info, iteration: root.iterations + 1),
                   try await grounded(found, evidence: root.evidence + [query], repl: repl, configuration: configuration) {
                    let answer = sink.redact(found)
                    sink.emit(info, .answer(text: answer, iterations: root.iterations))
                    finish(nil)
                    return RLMResult(
                        answer: answer, usage: tracker.usage, iterations: root.iterations, elapsed: .now - start,
                        events: sink.events, answeredAfterLimit: limit, strategy: .rlm)
                }
            } catch {
                // Fall through to the limit error.
            }
        }
        var error = RLMError.limitReached(limit)
        error.partialAnswer = sink.redact(root.bestAnswer)
        error.usage = tracker.usage
        finish(error)
        throw error
    }
}

/// What the direct path of a run needs: the context as text (`nil` when the run takes the RLM
/// loop), whether ``Strategy/direct`` forces it, and why.
struct DirectInput: Sendable {
    var text: String?
    /// The parts a scan reads (``ScanPlan``), when the context needs a few direct calls.
    var parts: [String]?
    var forced: Bool
    var reason: String

    /// `nil` when the strategy is `.rlm` or the root model's window is unknown (nothing to say).
    init?(_ configuration: RLMConfiguration, query: String, context: RLMContext) throws(RLMError) {
        switch configuration.strategy {
        case .rlm:
            return nil
        case .direct:
            guard let text = DirectPlan.text(of: context, maxBytes: .max) else {
                throw RLMError(code: .invalidConfiguration, message: "strategy direct needs a context one call can read (text, texts, JSON or a file); use auto or rlm for mapped files and bytes")
            }
            self.init(text: text, forced: true, reason: "the strategy is direct")
        case .auto:
            guard configuration.assists.contains(.directAnswers) else {
                self.init(text: nil, forced: false, reason: "direct answers are off (assists: \(configuration.assists)): the paper's method is the loop")
                return
            }
            guard let window = configuration.rootModel.contextWindow else { return nil }
            if configuration.refinement != nil {
                self.init(text: nil, forced: false, reason: "refinement works in the RLM loop")
            } else if !configuration.tools.isEmpty {
                self.init(text: nil, forced: false, reason: "tools are called from the RLM loop")
            } else if let text = DirectPlan.text(of: context, maxBytes: window.promptTokens * 2 * max(configuration.maxScanParts, 1)),
                      case let tokens = TokenEstimate.tokens(in: DirectPlan.messages(query: query, context: text)) {
                // The scan may use at most half the calls, so that the loop has the rest if it hands over.
                let maxParts = min(configuration.maxScanParts, (configuration.budget.maxModelCalls ?? .max) / 2)
                if tokens > configuration.maxDirectTokens {
                    self.init(text: nil, forced: false, reason: "the context (about \(tokens) tokens) is over maxDirectTokens (\(configuration.maxDirectTokens)), the most auto reads without the loop: information-dense work loses accuracy long before a window of \(window.tokens) tokens is full")
                } else if DirectPlan.fits(tokens: tokens, window: window) {
                    self.init(text: text, forced: false, reason: "the whole context (about \(tokens) tokens) fits in the root model's window of \(window.tokens)")
                } else if ScanPlan.combines(query) {
                    self.init(text: nil, forced: false, reason: "the context (about \(tokens) tokens) does not fit in half of the root model's window of \(window.tokens) tokens, and the query combines what its parts hold (a count, a list, a comparison), which one part's answer cannot give")
                } else if let parts = ScanPlan.parts(of: text, query: query, window: window, maxParts: maxParts) {
                    self.init(text: nil, forced: false, reason: "the context (about \(tokens) tokens) does not fit in half of the root model's window of \(window.tokens) tokens; it is read in \(parts.count) parts")
                    self.parts = parts
                } else if maxParts < 2 {
                    self.init(text: nil, forced: false, reason: "the context (about \(tokens) tokens) does not fit in half of the root model's window of \(window.tokens) tokens, and the scan is off (maxScanParts \(configuration.maxScanParts), at most half of \(configuration.budget.maxModelCalls.map { "\($0) calls" } ?? "the calls"))")
                } else {
                    self.init(text: nil, forced: false, reason: "the context (about \(tokens) tokens) needs more than \(maxParts) calls of half the root model's window of \(window.tokens) tokens")
                }
            } else {
                self.init(text: nil, forced: false, reason: "the context does not fit in half of the root model's window of \(window.tokens) tokens, or cannot be read whole")
            }
        }
    }

    private init(text: String?, forced: Bool, reason: String) {
        self.text = text
        self.parts = nil
        self.forced = forced
        self.reason = reason
    }
}

extension RLM {
    /// One call with the whole context. Returns the answer, or `nil` when the run should go on
    /// with the RLM loop (`.auto` only: the call was refused as too long, failed, or answered
    /// nothing usable). Limits and cancellation end the run as in the loop.
    static func answerDirectly(
        _ direct: DirectInput, query: String, contextDescription: String, tree: RunTree, sink: EventSink, info: NodeInfo
    ) async throws -> NodeOutcome? {
        guard let text = direct.text else { return nil }
        let configuration = tree.configuration
        sink.emit(info, .nodeStarted(query: query, context: contextDescription))
        sink.emit(info, .strategyChosen(strategy: .direct, reason: direct.reason))
        let fallback: String
        let asked = ContinuousClock.now
        do {
            let structured = configuration.structuredOutput
            let response = try await tree.call(
                configuration.rootModel, DirectPlan.messages(query: query, context: text, structured: structured), depth: 0, limited: false,
                schema: structured ? QuotedAnswer.schema : nil)
            sink.emit(info, .modelReplied(iteration: 0, text: response.text, usage: response.usage, latency: .now - asked))
            var answer = DirectPlan.answer(in: response.text)
            var refusal: String?
            switch structured ? QuotedAnswer.directAnswer(in: response.text, context: text) : nil {
            case .success(let quoted)?: answer = quoted
            case .failure(let refused)?: refusal = refused.reason
            case nil: break
            }
            // A model that writes REPL code (it was told of no REPL) wants the loop.
            if let problem = ReplyParser.hasREPLBlock(response.text) ? "it is code for a REPL" : refusal ?? RLMLoop.problem(with: answer) {
                guard !direct.forced else {
                    throw RLMError(code: .modelFailed, message: "the model's direct answer is unusable: \(problem)")
                }
                fallback = "the direct answer was unusable (\(problem))"
            } else {
                let redacted = sink.redact(answer)
                sink.emit(info, .answer(text: redacted, iterations: 0))
                return NodeOutcome(answer: redacted, iterations: 0)
            }
        } catch let error as RLMError {
            throw error
        } catch let refusal as ContextWindowExceeded where !direct.forced {
            fallback = "the server refused the whole context: \(refusal)"
        } catch {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            guard !direct.forced else {
                throw RLMError(code: .modelFailed, message: "the model '\(configuration.rootModel.modelName)' failed: \(sink.redact(String(describing: error)))", cause: error)
            }
            fallback = "the direct call failed: \(sink.redact(String(describing: error)))"
        }
        sink.emit(info, .strategyChosen(strategy: .rlm, reason: fallback))
        return nil
    }

    /// The scan (``ScanPlan``): each part read by one direct call. Returns the answer when exactly
    /// one part answered with what it holds, or `nil` when the run should go on with the RLM loop.
    /// Limits and cancellation end the run as in the loop.
    static func answerByScanning(
        _ parts: [String], _ direct: DirectInput, query: String, contextDescription: String, tree: RunTree, sink: EventSink,
        info: NodeInfo
    ) async throws -> NodeOutcome? {
        let model = tree.configuration.rootModel
        let structured = tree.configuration.structuredOutput
        sink.emit(info, .nodeStarted(query: query, context: contextDescription))
        sink.emit(info, .strategyChosen(strategy: .direct, reason: direct.reason))
        let fallback: String
        do {
            let findings = try await withThrowingTaskGroup(of: ScanPlan.Finding?.self) { group in
                for (index, part) in parts.enumerated() {
                    group.addTask {
                        let asked = ContinuousClock.now
                        let response = try await tree.call(
                            model, ScanPlan.messages(query: query, part: part, index: index, count: parts.count, structured: structured),
                            depth: 0, limited: true, schema: structured ? QuotedAnswer.schema : nil)
                        sink.emit(info, .modelReplied(iteration: 0, text: response.text, usage: response.usage, latency: .now - asked))
                        return ScanPlan.finding(in: response.text, part: part, index: index, query: query, structured: structured)
                    }
                }
                var findings: [ScanPlan.Finding] = []
                for try await finding in group {
                    if let finding { findings.append(finding) }
                }
                return findings.sorted { $0.index < $1.index }
            }
            if let chosen = ScanPlan.choice(among: findings, query: query) {
                let redacted = sink.redact(chosen.answer)
                tree.telemetry.logger.debug("the scan's part \(chosen.index + 1) of \(parts.count) answered")
                sink.emit(info, .answer(text: redacted, iterations: 0))
                return NodeOutcome(answer: redacted, iterations: 0)
            }
            fallback = findings.isEmpty ? "no part of the scan answered"
                : findings.count == 1 ? "the one part of the scan that answered does not hold its answer"
                : "\(findings.count) parts of the scan answered (parts \(findings.map { "\($0.index + 1)" }.joined(separator: ", "))), "
                    + (findings.filter(\.evidenced).count > 1 ? "several with evidence for different answers" : "and no one of them alone shows where its answer comes from")
                    + ": the loop combines or checks them"
        } catch let error as RLMError {
            throw error
        } catch is ContextWindowExceeded {
            fallback = "the server refused a part of the scan as too long"
        } catch {
            if Task.isCancelled || error is CancellationError { throw CancellationError() }
            fallback = "a call of the scan failed: \(sink.redact(String(describing: error)))"
        }
        sink.emit(info, .strategyChosen(strategy: .rlm, reason: fallback))
        return nil
    }

    /// Whether a forced answer may end the run: with ``RLMConfiguration/groundAnswers``, only one
    /// whose numbers (or words) the model has seen in an output or that `context` holds. There
    /// is no turn left to question it, so a made-up value ends the run at its limit instead.
    static func grounded(_ answer: String, evidence: [String], repl: REPLEnvironment, configuration: RLMConfiguration) async throws -> Bool {
        guard configuration.groundAnswers else { return true }
        return try await Grounding.missing(from: answer, seen: evidence, repl: repl).isEmpty
    }

    /// The answer in the reply to the final-answer request, or `nil` when it holds none (the run
    /// then ends at its limit, with its best answer as the partial one).
    ///
    /// In order: a `FINAL(...)`/`FINAL_VAR(...)` marker; the reply's code blocks, run as cells,
    /// where code submits with `FINAL(...)` or `answer` (small models answer in code even when
    /// asked not to); what the reply states at ``AnswerReader/Leniency/finalRequest`` (a block
    /// that is one literal or name, "Final answer: X", a reply without code that is its own
    /// answer). Without the ``Assists/Assist/lenientAnswers`` assist, as the reference reads its
    /// default answer: the paper's marker, else the whole reply. With ``Assists/Assist/refusals``
    /// an empty answer or a placeholder (the request's own words echoed back) is never one.
    static func forcedAnswer(
        in reply: String, repl: REPLEnvironment, configuration: RLMConfiguration, sink: EventSink, info: NodeInfo, iteration: Int
    ) async throws -> String? {
        let refusing = configuration.assists.contains(.refusals)
        func usable(_ reading: AnswerReader.Reading?) async throws -> String? {
            let text: String?
            switch reading {
            case .text(let value)?: text = value
            case .variable(let name)?: text = try await repl.variable(named: name)
            case .variableOrText(let name)?: text = try await repl.variable(named: name) ?? name
            case nil: text = nil
            }
            guard let text, !refusing || RLMLoop.problem(with: text) == nil else { return nil }
            return text
        }
        guard configuration.assists.contains(.lenientAnswers) else {
            let marker = AnswerReader.marker(in: reply, leniency: .paper)
            return try await usable(marker ?? .text(reply.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        if let marker = AnswerReader.marker(in: reply, leniency: .finalRequest) { return try await usable(marker) }
        let blocks = ReplyParser.codeBlocks(in: reply, pythonBlocks: configuration.assists.contains(.pythonBlocks))
        for (index, code) in blocks.enumerated() {
            let outcome = try await repl.run(code) { _ in }
            let output = sink.redact(RLMNode.describe(outcome, cell: index + 1, timeout: configuration.execTimeout, assists: configuration.assists))
            sink.emit(info, .codeExecuted(
                iteration: iteration, cell: index + 1, code: code, output: output,
                status: RLMEvent.CellStatus(outcome.result.status), duration: outcome.result.duration))
            if outcome.answer.ready, let answer = try await usable(.text(outcome.answer.content)) { return answer }
            if outcome.result.status == .abandoned { return nil }
        }
        return try await usable(AnswerReader.stated(in: reply, blocks: blocks, leniency: .finalRequest))
    }
}

/// A run in progress: its live events and, later, its result.
///
/// The run lives as long as its `RLMRun`: when the last copy is dropped before the run ends,
/// the run is cancelled (model calls are cancelled, Python code stopped) and its event stream
/// ends, so a server that forgets a run does not keep paying for it. Keep the value while you
/// want the run; ``result()`` and ``cancel()`` are the other ways to end your interest in it.
public struct RLMRun: Sendable {
    /// Every event of the run as it happens; the stream ends with the run.
    public let events: AsyncStream<RLMEvent>
    private let handle: Handle
    var task: Task<RLMResult, any Error> { handle.task }

    init(events: AsyncStream<RLMEvent>, task: Task<RLMResult, any Error>) {
        self.events = events
        self.handle = Handle(task: task)
    }

    /// Cancels the task when the last copy of the run goes.
    private final class Handle: Sendable {
        let task: Task<RLMResult, any Error>
        init(task: Task<RLMResult, any Error>) { self.task = task }
        deinit { task.cancel() }
    }

    /// Waits for the run to end. Cancelling the waiting task cancels the run.
    public func result() async throws -> RLMResult {
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    /// Cancels the run: model calls are cancelled and Python code is stopped.
    public func cancel() {
        task.cancel()
    }
}
