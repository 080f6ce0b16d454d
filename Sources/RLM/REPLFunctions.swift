import Logging
import PythonRuntime
import Synchronization
import Tracing

/// Connects a REPL's Python functions to the run that currently uses it. A session's REPL
/// outlives each run, so the functions look the run up at call time.
final class REPLBinding: Sendable {
    let node: NodeInfo
    private let current = Mutex<RunTree?>(nil)
    private let scope = Mutex<CellScope?>(nil)

    init(node: NodeInfo, tree: RunTree? = nil) {
        self.node = node
        current.withLock { $0 = tree }
    }

    func bind(_ tree: RunTree) { current.withLock { $0 = tree } }

    /// Sets what the native calls of the cell about to run carry (`nil` after it).
    func enter(_ cell: CellScope?) { scope.withLock { $0 = cell } }

    /// Runs `body` under the current cell's span context: native calls start on a Python thread,
    /// outside the task that runs the cell, so its task-locals are set again here.
    func scoped<T>(_ body: () async throws -> T) async throws -> T {
        guard let cell = scope.withLock({ $0 }) else { return try await body() }
        return try await ServiceContext.withValue(cell.context) { try await body() }
    }

    /// The current cell's logger.
    var logger: Logger? { scope.withLock { $0?.logger } }

    var tree: RunTree {
        get throws {
            guard let tree = current.withLock({ $0 }) else {
                throw PythonError(code: .exception, typeName: "RuntimeError", message: "no run is using this REPL")
            }
            return tree
        }
    }

    /// `llm_query`, `llm_query_batched`, `rlm_query`, `rlm_query_batched` and the tools.
    func functions(tools: [RLMTool], maxDepth: Int, maxConcurrentChildren: Int) -> [NativeFunction] {
        let node = self.node
        let childrenAreRLMs = node.depth + 1 < maxDepth
        var functions = [
            NativeFunction(name: "llm_query", documentation: "llm_query(prompt, model=None, depth=None) -> str", async: { [self] arguments in
                let (prompt, model) = try Self.promptAndModel(arguments, function: "llm_query")
                let depth = try Self.depthRequest(arguments, function: "llm_query")
                guard depth != .plain else {
                    return try await scoped { .string(try await self.tree.subcall(prompt, model: model, from: node, logger: self.logger)) }
                }
                let tree = try self.tree
                let logger = self.logger
                return try await scoped {
                    let routes = try await Self.routes([prompt], depth: depth, childrenAreRLMs: childrenAreRLMs, model: model, tree: tree, node: node)
                    return .string(try await Self.send(prompt, recurse: routes[0], model: model, tree: tree, node: node, logger: logger))
                }
            }),
            NativeFunction(name: "llm_query_batched", documentation: "llm_query_batched(prompts, model=None, depth=None) -> list[str]", async: { [self] arguments in
                let (prompts, model) = try Self.promptsAndModel(arguments, function: "llm_query_batched")
                let depth = try Self.depthRequest(arguments, function: "llm_query_batched")
                let tree = try self.tree
                let logger = self.logger
                guard depth != .plain else {
                    return try await scoped { .list(try await Self.batch(prompts) { try await tree.subcall($1, model: model, from: node, logger: logger) }) }
                }
                return try await scoped {
                    let routes = try await Self.routes(prompts, depth: depth, childrenAreRLMs: childrenAreRLMs, model: model, tree: tree, node: node)
                    return .list(try await Self.batch(prompts, width: routes.contains(true) ? maxConcurrentChildren : nil) { index, prompt in
                        try await Self.send(prompt, recurse: routes[index], model: model, tree: tree, node: node, logger: logger)
                    })
                }
            }),
            NativeFunction(name: "rlm_query", documentation: "rlm_query(prompt, model=None) -> str", async: { [self] arguments in
                let (prompt, model) = try Self.promptAndModel(arguments, function: "rlm_query")
                let tree = try self.tree
                let logger = self.logger
                return try await scoped {
                    guard childrenAreRLMs, case .string(let text) = prompt else {
                        return .string(try await tree.subcall(prompt, model: model, from: node, logger: logger))
                    }
                    return .string(try await tree.child(text, model: model, from: node))
                }
            }),
            NativeFunction(name: "rlm_query_batched", documentation: "rlm_query_batched(prompts, model=None) -> list[str]", async: { [self] arguments in
                let (prompts, model) = try Self.promptsAndModel(arguments, function: "rlm_query_batched")
                let tree = try self.tree
                let logger = self.logger
                return try await scoped {
                    .list(try await Self.batch(prompts, width: childrenAreRLMs ? maxConcurrentChildren : nil) { _, prompt in
                        guard childrenAreRLMs, case .string(let text) = prompt else {
                            return try await tree.subcall(prompt, model: model, from: node, logger: logger)
                        }
                        return try await tree.child(text, model: model, from: node)
                    })
                }
            }),
        ]
        for tool in tools {
            let body = tool.body
            functions.append(NativeFunction(name: tool.name, documentation: tool.description, async: { [self] arguments in
                try await scoped { try await body(arguments) }
            }))
        }
        return functions
    }

    /// Runs `body` on every prompt concurrently; results keep their order and a failed slot
    /// holds `"[error] …"` without failing the others.
    ///
    /// A single call's work runs on the calling Python thread while it waits (see
    /// `NativeFunction`); a batch's calls run on the global concurrent executor instead, so their
    /// CPU work (bodies to encode and decode) spreads over its threads.
    ///
    /// A budget limit (the run's model calls, tokens, cost or deadline) is not a slot's failure:
    /// the whole run is ending, so the batch raises it instead of returning, and the code after the
    /// call never runs.
    ///
    /// `width` caps how many run at once (the rest start as others finish); `nil` starts all.
    static func batch(
        _ prompts: [PythonValue], width: Int? = nil, _ body: @escaping @Sendable (Int, PythonValue) async throws -> String
    ) async throws -> [PythonValue] {
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            var pending = prompts.enumerated().makeIterator()
            func startNext() -> Bool {
                guard let (index, prompt) = pending.next() else { return false }
                group.addTask(executorPreference: globalConcurrentExecutor) {
                    do {
                        return (index, try await body(index, prompt))
                    } catch let error as RLMError where error.limit.map({ !$0.isNodeLimit }) == true {
                        throw error
                    } catch let error as PythonError {
                        return (index, "[error] \(error.typeName.isEmpty ? "" : error.typeName + ": ")\(error.message)")
                    } catch {
                        return (index, "[error] \(error)")
                    }
                }
                return true
            }
            var started = 0
            while started < (width ?? prompts.count), startNext() { started += 1 }
            var results = [PythonValue](repeating: .none, count: prompts.count)
            for try await (index, text) in group {
                results[index] = .string(text)
                _ = startNext()
            }
            return results
        }
    }

    private static func modelName(_ arguments: PythonArguments, function: String) throws -> String? {
        switch arguments.value(at: 1, named: "model") {
        case nil, .none?: return nil
        case .string(let name)?: return name
        case let other?:
            throw PythonError(code: .exception, typeName: "TypeError", message: "\(function)() model must be a str or None, not \(other.pythonTypeName)")
        }
    }

    /// What a sub-call's `depth` argument asks for.
    enum DepthRequest: Equatable {
        /// `None` or 0: a plain call.
        case plain
        /// `"auto"`: the configured ``SubcallRouter`` decides.
        case auto
        /// 1: a child RLM (where this node may have children).
        case recurse
    }

    private static func depthRequest(_ arguments: PythonArguments, function: String) throws -> DepthRequest {
        switch arguments.value(at: 2, named: "depth") {
        case nil, .none?, .int(0)?: return .plain
        case .string("auto")?: return .auto
        case .int(1)?: return .recurse
        case let other?:
            throw PythonError(code: .exception, typeName: "ValueError",
                              message: "\(function)() depth must be None (a plain call), 'auto' (the engine decides) or 1 (a child RLM), not \(other)")
        }
    }

    /// Whether each prompt goes to a child RLM, with each decision in the trajectory.
    private static func routes(
        _ prompts: [PythonValue], depth: DepthRequest, childrenAreRLMs: Bool, model: String?, tree: RunTree, node: NodeInfo
    ) async throws -> [Bool] {
        let texts = prompts.map { prompt -> String? in if case .string(let text) = prompt { text } else { nil } }
        var decisions: [SubcallDecision]
        if !childrenAreRLMs {
            decisions = prompts.map { _ in SubcallDecision(recurse: false, reason: "at the depth limit: a plain call") }
        } else if depth == .recurse {
            decisions = prompts.map { _ in SubcallDecision(recurse: true, reason: "depth=1 was asked for: a child RLM") }
        } else {
            let subModel = try tree.model(named: model, fallback: tree.configuration.subModel ?? tree.configuration.rootModel)
            let context = SubcallRoutingContext(depth: node.depth, subModel: subModel) { model, messages in
                try await tree.call(model, messages, depth: node.depth, limited: true)
            }
            decisions = try await tree.configuration.subcallRouter.route(texts.map { $0 ?? "" }, context: context)
            guard decisions.count == prompts.count else {
                throw RLMError(code: .invalidConfiguration, message: "the sub-call router gave \(decisions.count) decisions for \(prompts.count) prompts")
            }
        }
        for index in decisions.indices where decisions[index].recurse && texts[index] == nil {
            decisions[index] = SubcallDecision(recurse: false, reason: "a list of messages cannot be a child's context: a plain call", score: decisions[index].score)
        }
        for (text, decision) in zip(texts, decisions) {
            tree.events.emit(node, .subcallRouted(
                prompt: TrajectoryWriter.clip(text ?? "(messages)", 200), recurse: decision.recurse, reason: decision.reason, score: decision.score))
        }
        return decisions.map(\.recurse)
    }

    private static func send(
        _ prompt: PythonValue, recurse: Bool, model: String?, tree: RunTree, node: NodeInfo, logger: Logger?
    ) async throws -> String {
        if recurse, case .string(let text) = prompt { return try await tree.child(text, model: model, from: node) }
        return try await tree.subcall(prompt, model: model, from: node, logger: logger)
    }

    private static func promptAndModel(_ arguments: PythonArguments, function: String) throws -> (PythonValue, String?) {
        guard let prompt = arguments.value(at: 0, named: "prompt") else {
            throw PythonError(code: .exception, typeName: "TypeError", message: "\(function)() missing required argument: 'prompt'")
        }
        return (prompt, try modelName(arguments, function: function))
    }

    private static func promptsAndModel(_ arguments: PythonArguments, function: String) throws -> ([PythonValue], String?) {
        guard let prompts = arguments.value(at: 0, named: "prompts") else {
            throw PythonError(code: .exception, typeName: "TypeError", message: "\(function)() missing required argument: 'prompts'")
        }
        guard case .list(let items) = prompts else {
            throw PythonError(code: .exception, typeName: "TypeError", message: "\(function)() prompts must be a list, not \(prompts.pythonTypeName)")
        }
        return (items, try modelName(arguments, function: function))
    }
}
