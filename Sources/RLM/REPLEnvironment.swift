import Foundation
import PythonRuntime

/// The Python side of one RLM node: a namespace with the context, the helpers of the REPL
/// protocol (`llm_query`, `rlm_query`, their batched forms, `SHOW_VARS`, the `answer` dict) and
/// the bookkeeping after each cell (restoring reserved names, reading the answer).
final class REPLEnvironment: Sendable {
    static let reservedNames = [
        "context", "context_0", "llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched",
        "SHOW_VARS", "FINAL", "FINAL_VAR", "history",
    ]

    let namespace: PythonNamespace
    let execTimeout: Duration

    /// What a cell left behind.
    struct CellOutcome: Sendable {
        var result: ExecutionResult
        var answer: RLMLoop.AnswerState
        var restoredNames: [String]
    }

    init(name: String, maxOutputCharacters: Int, execTimeout: Duration, functions: [NativeFunction], extraReserved: [String]) async throws {
        self.execTimeout = execTimeout
        namespace = try await PythonNamespace(configuration: .init(name: name, maxOutputCharacters: maxOutputCharacters))
        for function in functions {
            try await namespace.install(function)
        }
        let reserved = (Self.reservedNames + extraReserved).map { "\"\($0)\"" }.joined(separator: ", ")
        try await namespace.executePrivately("RESERVED = (\(reserved),)\n" + Self.support)
    }

    /// A REPL for one node, with the protocol's functions bound through `binding` and the
    /// configuration's tools, output limit and cell timeout.
    convenience init(name: String, configuration: RLMConfiguration, binding: REPLBinding) async throws {
        try await self.init(
            name: name, maxOutputCharacters: configuration.maxOutputCharacters, execTimeout: configuration.execTimeout,
            functions: binding.functions(tools: configuration.tools, maxDepth: configuration.maxDepth),
            extraReserved: configuration.tools.map(\.name))
    }

    /// Binds a context as `context_<index>` and makes `context` point to it.
    func addContext(_ context: RLMContext, index: Int) async throws -> String {
        let description = try await context.load(into: namespace, as: "context_\(index)")
        try await namespace.executePrivately("g['context'] = g['context_\(index)']\nreserve()")
        return description
    }

    /// Sets `history` to the earlier turns of a session.
    func setHistory(_ turns: [(query: String, answer: String)]) async throws {
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
        do {
            result = try await namespace.execute(code, timeout: execTimeout)
        } catch is CancellationError {
            if let state = try? await afterCell() { onInterrupted(state.answer) }
            throw CancellationError()
        }
        if result.status == .abandoned {
            return CellOutcome(result: result, answer: .init(ready: false, content: ""), restoredNames: [])
        }
        let state = try await afterCell()
        return CellOutcome(result: result, answer: state.answer, restoredNames: state.restored)
    }

    private func afterCell() async throws -> (answer: RLMLoop.AnswerState, restored: [String]) {
        let after = try await namespace.evaluatePrivately("after_cell()").listValue ?? []
        let ready = after.first == .bool(true)
        let content = after.count > 1 ? after[1].stringValue ?? "" : ""
        let restored = after.count > 2 ? (after[2].listValue ?? []).compactMap(\.stringValue) : []
        return (.init(ready: ready, content: content), restored)
    }

    /// The `str()` of a variable, for `FINAL_VAR(name)`; `nil` when it does not exist.
    func variable(named name: String) async throws -> String? {
        guard name.isPythonIdentifier else { return nil }
        let literal = PythonValue.string(name).description
        let found = try await namespace.evaluatePrivately("final_var(\(literal))").listValue ?? []
        guard found.first == .bool(true) else { return nil }
        return found.count > 1 ? found[1].stringValue : nil
    }

    func close() async {
        await namespace.close()
    }

    /// Host-side helpers, run in the namespace's private scope (`g` is the user's globals):
    /// Python/repl_support.py, embedded at build time.
    private static let support = String(decoding: PackageResources.repl_support_py, as: UTF8.self)
}
