import PythonRuntime

/// A multi-turn conversation with one REPL that persists across queries.
///
/// Each turn's context is added as `context_1`, `context_2`, … (`context` is the newest), earlier
/// queries and answers are in `history`, and every variable the model made stays. Each turn has
/// its own budget. Turns run one at a time, in the order they were asked for; a closed session
/// throws ``RLMError/Code/sessionClosed``.
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
    private var closed = false
    /// Whether a turn (or the close) holds the session, and who waits for it, first come first served.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(configuration: RLMConfiguration) {
        self.configuration = configuration
    }

    /// Answers `query`, adding `context` to the REPL first.
    public func complete(query: String, context: RLMContext, trajectory: TrajectoryWriter? = nil) async throws -> RLMResult {
        try configuration.validate()
        await acquire()
        defer { release() }
        guard !closed else { throw RLMError(code: .sessionClosed, message: "the session is closed: start a new one with RLM.session()") }
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

    /// Closes the REPL once the turn in progress, if any, has ended. Later turns throw
    /// ``RLMError/Code/sessionClosed``.
    public func close() async {
        closed = true
        await acquire()
        defer { release() }
        await repl?.environment.close()
        repl = nil
    }

    private func acquire() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the session to the next waiter, if any, still busy; otherwise frees it.
    private func release() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
