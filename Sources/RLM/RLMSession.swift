import PythonRuntime

/// A multi-turn conversation with one REPL that persists across queries.
///
/// Each turn's context is added as `context_1`, `context_2`, … (`context` is the newest), earlier
/// queries and answers are in `history`, and every variable the model made stays. Each turn has
/// its own budget. Turns run one at a time.
///
/// ```swift
/// let session = rlm.session()
/// let first = try await session.complete(query: "Summarise the log", context: .file(log))
/// let second = try await session.complete(query: "Which errors repeat?", context: .text(""))
/// await session.close()
/// ```
public actor RLMSession {
    private let configuration: RLMConfiguration
    private var repl: (environment: REPLEnvironment, binding: REPLBinding)?
    private var contexts = 0
    private var turns: [(query: String, answer: String)] = []

    init(configuration: RLMConfiguration) {
        self.configuration = configuration
    }

    /// Answers `query`, adding `context` to the REPL first.
    public func complete(query: String, context: RLMContext, trajectory: TrajectoryWriter? = nil) async throws -> RLMResult {
        try configuration.validate()
        let sink = EventSink(continuation: nil, trajectory: trajectory, observer: nil, start: .now, redact: Redactor(configuration))
        defer { sink.finish() }
        let (environment, binding) = try await prepare()
        let description = try await environment.addContext(context, index: contexts)
        contexts += 1
        try await environment.setHistory(turns)
        let result = try await RLM.runRoot(
            configuration, query: query, contextDescription: description, repl: environment, binding: binding,
            persistent: true, sink: sink)
        turns.append((query, result.answer))
        return result
    }

    private func prepare() async throws -> (REPLEnvironment, REPLBinding) {
        if let repl { return repl }
        let binding = REPLBinding(node: NodeInfo(id: 0, parentID: nil, depth: 0))
        let environment = try await REPLEnvironment(name: "session", configuration: configuration, binding: binding)
        repl = (environment, binding)
        return (environment, binding)
    }

    /// Closes the REPL. The session cannot be used afterwards.
    public func close() async {
        await repl?.environment.close()
        repl = nil
    }
}
