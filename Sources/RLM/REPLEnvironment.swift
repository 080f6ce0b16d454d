import Foundation
import PythonRuntime
import Synchronization

/// The Python side of one RLM node: a namespace with the context, the helpers of the REPL
/// protocol (`llm_query`, `rlm_query`, their batched forms, `SHOW_VARS`, the `answer` dict) and
/// the bookkeeping after each cell (restoring reserved names, reading the answer). Under
/// ``Isolation/Level/inProcess`` the namespace is sandboxed and has a scratch directory of its own.
final class REPLEnvironment: Sendable {
    static let reservedNames = [
        "context", "context_0", "llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched",
        "SHOW_VARS", "FINAL", "FINAL_VAR", "history",
    ]

    let execTimeout: Duration
    /// What the REPL does beyond the protocol (``Assists/Assist/pastedContext``, ``Assists/Assist/refusals``).
    let assists: Assists
    private let setup: Setup
    private let state: Mutex<State>

    /// What a fresh namespace for this REPL needs.
    private struct Setup: Sendable {
        var name: String
        var maxOutputCharacters: Int
        var functions: [NativeFunction]
        var reserved: [String]
        var stopGracePeriod: Duration
        var isolation: Isolation
        var scratch: URL?
        /// The node's depth: its thread-pool level, so that a parent's cells waiting on its
        /// children never hold the threads the children's cells need.
        var depth: Int
    }

    private struct State: Sendable {
        var namespace: any PythonREPL
        /// Every context bound so far, to bind again after a restart.
        var contexts: [(context: RLMContext, index: Int)] = []
        var history: [(query: String, answer: String)]?
    }

    /// The namespace the REPL currently runs in (a restart replaces it).
    var namespace: any PythonREPL { state.withLock { $0.namespace } }
    /// The directory code may write, `nil` when isolation is unrestricted.
    var scratch: URL? { setup.scratch }

    /// What a cell left behind.
    struct CellOutcome: Sendable {
        var result: ExecutionResult
        var answer: RLMLoop.AnswerState
        var restoredNames: [String]
        /// Whether statements that set `context` to text written in the code were left out
        /// (``withoutPastedContext(_:)``).
        var skippedPastedContext = false
    }

    /// A REPL for one node, with the protocol's functions bound through `binding` and the
    /// configuration's tools, output limit, cell timeout and isolation.
    init(name: String, configuration: RLMConfiguration, binding: REPLBinding) async throws {
        execTimeout = configuration.execTimeout
        assists = configuration.assists
        let isolation = configuration.isolation
        // A warm worker comes with the scratch directory it was confined to.
        let warm = try await WarmWorkers.pool(
            for: isolation, maxOutputCharacters: configuration.maxOutputCharacters, stopGracePeriod: configuration.stopGracePeriod)?.acquire()
        let scratch = try warm.map { URL(fileURLWithPath: $0.scratch) } ?? (isolation.level == .unrestricted ? nil : Self.makeScratchDirectory())
        setup = Setup(
            name: name, maxOutputCharacters: configuration.maxOutputCharacters,
            functions: binding.functions(
                tools: configuration.tools, maxDepth: configuration.maxDepth, maxConcurrentChildren: configuration.maxConcurrentChildren),
            reserved: Self.reservedNames + configuration.tools.map(\.name),
            stopGracePeriod: configuration.stopGracePeriod, isolation: isolation, scratch: scratch,
            depth: binding.node.depth)
        do {
            if let warm {
                try await Self.prepare(warm.worker, setup)
                state = Mutex(State(namespace: warm.worker))
            } else {
                state = Mutex(State(namespace: try await Self.makeNamespace(setup)))
            }
        } catch {
            if let scratch { ScratchDirectory.remove(scratch.path) }
            throw error
        }
    }

    private static func makeNamespace(_ setup: Setup) async throws -> any PythonREPL {
        let namespace: any PythonREPL
        if setup.isolation.level == .process, let scratch = setup.scratch {
            namespace = try await PythonWorker.start(configuration: WarmWorkers.configuration(
                for: WarmWorkers.Key(setup.isolation, maxOutputCharacters: setup.maxOutputCharacters, stopGracePeriod: setup.stopGracePeriod),
                scratch: scratch.path, name: setup.name))
        } else {
            let isolation = setup.isolation
            let sandbox = setup.scratch.map {
                PythonSandbox(
                    readablePaths: isolation.readablePaths, writablePaths: [$0.path],
                    nativeModules: isolation.nativeModules, allowsNetwork: isolation.allowsNetwork)
            }
            namespace = try await PythonNamespace(configuration: .init(
                name: setup.name, maxOutputCharacters: setup.maxOutputCharacters, stopGracePeriod: setup.stopGracePeriod,
                sandbox: sandbox, level: setup.depth))
        }
        try await prepare(namespace, setup)
        return namespace
    }

    /// Installs the protocol's functions and helpers in a started namespace; closes it if that fails.
    private static func prepare(_ namespace: any PythonREPL, _ setup: Setup) async throws {
        do {
            try await namespace.install(setup.functions)
            let reserved = setup.reserved.map { "\"\($0)\"" }.joined(separator: ", ")
            try await namespace.executePrivately("RESERVED = (\(reserved),)\n" + Self.support)
        } catch {
            await namespace.close()
            throw error
        }
    }

    /// A new private directory (mode 0700) under the system's temporary directory.
    private static func makeScratchDirectory() throws -> URL {
        switch ScratchDirectory.make(in: FileManager.default.temporaryDirectory.path) {
        case .success(let path): return URL(fileURLWithPath: path)
        case .failure(let failure):
            throw RLMError(code: .pythonFailed, message: "could not create the REPL's scratch directory \(failure.path): \(failure.reason)")
        }
    }

    /// Replaces an abandoned namespace with a fresh one and binds the contexts (and a session's
    /// history) again. Variables are lost; files in the scratch directory stay.
    func restart() async throws {
        let (old, contexts, history) = state.withLock { ($0.namespace, $0.contexts, $0.history) }
        let fresh = try await Self.makeNamespace(setup)
        do {
            for (context, index) in contexts {
                _ = try await context.load(into: fresh, as: "context_\(index)")
                try await fresh.executePrivately("g['context'] = g['context_\(index)']\nreserve()")
            }
            if let history { try await Self.bindHistory(history, in: fresh) }
        } catch {
            await fresh.close()
            throw error
        }
        state.withLock { $0.namespace = fresh }
        await old.close()
    }

    /// Binds a context as `context_<index>` and makes `context` point to it.
    func addContext(_ context: RLMContext, index: Int) async throws -> String {
        let namespace = self.namespace
        let description = try await context.load(into: namespace, as: "context_\(index)")
        try await namespace.executePrivately("g['context'] = g['context_\(index)']\nreserve()")
        state.withLock { $0.contexts.append((context, index)) }
        return description
    }

    /// Whether a context bound so far is a mapped file: the system prompt then says how to use one.
    var hasMappedContext: Bool {
        state.withLock { $0.contexts.contains { if case .mappedFile = $0.context { true } else { false } } }
    }

    /// The model's variables, pickled, and those that would not pickle (or load again), with why.
    /// Contexts (`context_N`) are among the variables.
    func snapshotVariables() async throws -> (saved: [String: Data], skipped: [(name: String, reason: String)]) {
        let result = try await namespace.evaluatePrivately("snapshot_variables()").listValue ?? []
        var saved: [String: Data] = [:]
        if case .dictionary(let entries)? = result.first {
            for entry in entries {
                guard case .bytes(let data) = entry.value else { continue }
                saved[entry.key] = data
            }
        }
        let skipped = (result.count > 1 ? result[1].listValue ?? [] : []).compactMap { item -> (String, String)? in
            guard let pair = item.listValue, pair.count == 2, let name = pair[0].stringValue, let reason = pair[1].stringValue else { return nil }
            return (name, reason)
        }
        return (saved, skipped)
    }

    /// Loads pickled variables back; `context` points at the newest of `contextCount` contexts,
    /// which are bound again if the REPL has to be restarted.
    func restoreVariables(_ saved: [String: Data], contextCount: Int) async throws {
        let namespace = self.namespace
        let value = PythonValue.dictionary(saved.sorted { $0.key < $1.key }.map { PythonValue.Entry($0.key, .bytes($0.value)) })
        try await namespace.set("__rlm_restore__", to: value)
        try await namespace.executePrivately("restore_variables(g.pop('__rlm_restore__'))")
        var contexts: [(RLMContext, Int)] = []
        for index in 0..<contextCount {
            let name = "context_\(index)"
            let restored = try await namespace.evaluatePrivately("g.get('\(name)')")
            switch restored {
            case .none: continue
            case .string(let text): contexts.append((.text(text), index))
            case .bytes(let data): contexts.append((.bytes(data), index))
            default: contexts.append((.json(restored), index))
            }
        }
        if let newest = contexts.last {
            try await namespace.executePrivately("g['context'] = g['context_\(newest.1)']\nreserve()")
        }
        state.withLock { $0.contexts = contexts }
    }

    /// Binds `current_answer`, gives `scratch` its first value ("") if it has none, and clears the
    /// answer protocol's state, for a refinement phase.
    func prepareRefinement(currentAnswer: String) async throws {
        let namespace = self.namespace
        try await namespace.set("current_answer", to: .string(currentAnswer))
        try await namespace.executePrivately("g.setdefault('scratch', '')\ng['answer'] = {'content': '', 'ready': False}")
    }

    /// Sets `history` to the earlier turns of a session.
    func setHistory(_ turns: [(query: String, answer: String)]) async throws {
        try await Self.bindHistory(turns, in: namespace)
        state.withLock { $0.history = turns }
    }

    private static func bindHistory(_ turns: [(query: String, answer: String)], in namespace: any PythonREPL) async throws {
        let value = PythonValue.list(turns.map { ["query": .string($0.query), "answer": .string($0.answer)] })
        try await namespace.set("history", to: value)
        try await namespace.executePrivately("reserve()\ng['answer'] = {'content': '', 'ready': False}")
    }

    /// Runs one cell and reads the answer protocol afterwards.
    ///
    /// - Parameter onInterrupted: when the cell is cancelled, receives the answer state it left,
    ///   so the best answer so far includes what the stopped cell wrote.
    func run(_ code: String, onInterrupted: (RLMLoop.AnswerState) -> Void) async throws -> CellOutcome {
        let result: ExecutionResult
        let stripped = assists.contains(.pastedContext) ? try await withoutPastedContext(code) : nil
        do {
            // The answer protocol is read in the same job as the cell.
            result = try await namespace.execute(stripped ?? code, timeout: execTimeout, then: "after_cell()")
        } catch is CancellationError {
            if let state = try? await afterCell() { onInterrupted(state.answer) }
            throw CancellationError()
        }
        if result.status == .abandoned {
            return CellOutcome(result: result, answer: .init(ready: false, content: ""), restoredNames: [])
        }
        let state = try await afterCell(result.followUp)
        if state.answer.ready, assists.contains(.refusals), RLMLoop.problem(with: state.answer.content) != nil {
            // Refused (the loop tells the model why): withdrawn, so the next cell does not
            // submit it again unless the model does.
            try await withdrawSubmission()
        }
        return CellOutcome(result: result, answer: state.answer, restoredNames: state.restored, skippedPastedContext: stripped != nil)
    }

    /// `code` without its top-level statements that set `context` to a string written in it
    /// (`context = """Record 0 | …`), or `nil` when it has none. Small models paste the preview
    /// of the first message into `context`, and everything the block computed was then about
    /// that sample; restoring `context` after the block came too late. The rest of the block
    /// runs on the whole input. Code that transforms `context` (`context = context.lower()`) is
    /// left as it is.
    func withoutPastedContext(_ code: String) async throws -> String? {
        guard Self.mayPasteContext(code) else { return nil }
        let literal = PythonValue.string(code).description
        return try await namespace.evaluatePrivately("without_pasted_context(\(literal))").stringValue
    }

    /// Whether a line of `code` may set `context` to a string literal: the cheap test before
    /// the REPL parses it.
    static func mayPasteContext(_ code: String) -> Bool {
        code.split(separator: "\n").contains { line in
            line.wholeMatch(of: /\s*context\s*(?::\s*str\s*)?=\s*[rRuUfFbB]{0,2}(?:"|').*/) != nil
        }
    }

    /// Sets `answer["ready"]` back to `False`, keeping the content: a submission the engine did
    /// not take (refused, or questioned) is not submitted again by the next cell.
    func withdrawSubmission() async throws {
        try await namespace.executePrivately("withdraw_submission()")
    }

    /// What `after_cell()` says; `read` is its value when the cell's job already evaluated it.
    private func afterCell(_ read: PythonValue? = nil) async throws -> (answer: RLMLoop.AnswerState, restored: [String]) {
        let value: PythonValue
        if let read { value = read } else { value = try await namespace.evaluatePrivately("after_cell()") }
        let after = value.listValue ?? []
        let ready = after.first == .bool(true)
        let content = after.count > 1 ? after[1].stringValue ?? "" : ""
        let restored = after.count > 2 ? (after[2].listValue ?? []).compactMap(\.stringValue) : []
        return (.init(ready: ready, content: content), restored)
    }

    /// For each of `texts`, whether `context` holds it (a `str` or mapped file by substring, a
    /// list by any of its `str` items; other contexts hold nothing).
    func contextContains(_ texts: [String]) async throws -> [Bool] {
        let literal = PythonValue.list(texts.map(PythonValue.string)).description
        let found = try await namespace.evaluatePrivately("context_contains(\(literal))").listValue ?? []
        return texts.indices.map { found.indices.contains($0) && found[$0] == .bool(true) }
    }

    /// What a node's first message shows of `context`.
    struct ContextPreview: Sendable, Equatable {
        /// The first characters as the model would print them (a clipped `repr` for what is not
        /// text); "" when there is no context or the preview is off.
        var start = ""
        /// For long text, a sample from the line that starts at about its middle: small models
        /// copy what the start alone shows (`startswith('Record 0 |')`) into code meant for
        /// every record.
        var middle: String?
    }

    /// The preview of `context` for a node's first message: its first `characters` characters
    /// and, for text over four times as long, half as many from its middle.
    func contextPreview(characters: Int) async throws -> ContextPreview {
        guard characters > 0 else { return ContextPreview() }
        var preview = ContextPreview()
        preview.start = try await namespace.evaluatePrivately("context_preview(\(characters))").stringValue ?? ""
        if let middle = try await namespace.evaluatePrivately("context_middle(\(characters))").stringValue, !middle.isEmpty {
            preview.middle = middle
        }
        return preview
    }

    /// The `str()` of a variable, for `FINAL_VAR(name)`; `nil` when it does not exist.
    func variable(named name: String) async throws -> String? {
        guard name.isPythonIdentifier else { return nil }
        let literal = PythonValue.string(name).description
        let found = try await namespace.evaluatePrivately("final_var(\(literal))").listValue ?? []
        guard found.first == .bool(true) else { return nil }
        return found.count > 1 ? found[1].stringValue : nil
    }

    /// Closes the namespace and removes the scratch directory.
    func close() async {
        await namespace.close()
        if let scratch { ScratchDirectory.remove(scratch.path) }
    }

    /// Host-side helpers, run in the namespace's private scope (`g` is the user's globals):
    /// Python/repl_support.py and Python/mapped_text.py (``RLMContext/mappedFile(_:)``), embedded
    /// at build time.
    private static let support = String(decoding: PackageResources.repl_support_py, as: UTF8.self)
        + "\n" + String(decoding: PackageResources.mapped_text_py, as: UTF8.self)
}
