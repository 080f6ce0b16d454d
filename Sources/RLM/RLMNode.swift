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

    struct Progress {
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

    /// Runs the loop on a prepared REPL: each of ``RLMLoop``'s actions is carried out by
    /// ``NodeRun``, which holds the conversation.
    func run(
        query: String?, contextDescription: String, repl: REPLEnvironment, binding: REPLBinding, persistent: Bool
    ) async throws -> NodeOutcome {
        let run = try await NodeRun(
            node: self, query: query, contextDescription: contextDescription, repl: repl, binding: binding, persistent: persistent)
        defer { run.end() }
        var action = run.loop.start()
        while true {
            if Task.isCancelled {
                run.remember()
                throw CancellationError()
            }
            switch action {
            case .callModel(let iteration):
                action = try await run.turn(iteration)
            case .execute(let index, let code):
                action = try await run.cell(index, code: code)
            case .resolveVariable(let name):
                action = try await run.resolve(name)
            case .check(let answer):
                action = try await run.check(answer)
            case .finish(let answer):
                switch try await run.finish(answer) {
                case .answered(let outcome): return outcome
                case .goOn(let next): action = next
                }
            case .stop(let limit):
                throw run.stopped(limit)
            }
        }
    }

    /// Updates what the node publishes about its progress.
    func remember(_ update: (inout Progress) -> Void) {
        progress.withLock { update(&$0) }
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
    static func describe(_ outcome: REPLEnvironment.CellOutcome, cell: Int, timeout: Duration, assists: Assists) -> String {
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
