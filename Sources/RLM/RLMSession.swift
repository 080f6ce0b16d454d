import Foundation
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
    /// A session at rest, to store and continue later, in this process or another
    /// (``RLM/session(restoring:)``): its turns, its contexts and the REPL's variables that
    /// pickle, and those that did not, with why.
    ///
    /// Variables are pickled by the REPL's own Python (protocol 5); restore a snapshot with the
    /// same Python minor version. Loading one runs `pickle.loads` inside the REPL, under its
    /// isolation: restore only snapshots your own store produced.
    public struct Snapshot: Sendable, Hashable, Codable {
        /// One answered turn.
        public struct Turn: Sendable, Hashable, Codable {
            /// The query.
            public var query: String
            /// The answer.
            public var answer: String
            /// What the turn used.
            public var usage: UsageSummary

            /// Creates a turn.
            public init(query: String, answer: String, usage: UsageSummary = UsageSummary()) {
                self.query = query
                self.answer = answer
                self.usage = usage
            }
        }

        /// A variable that was not saved.
        public struct Skipped: Sendable, Hashable, Codable {
            /// Its name.
            public var name: String
            /// Why: the error pickling (or loading it back) raised.
            public var reason: String

            /// Creates an entry.
            public init(name: String, reason: String) {
                self.name = name
                self.reason = reason
            }
        }

        /// The format of this structure; 1.
        public var format: Int = 1
        /// The turns so far, oldest first.
        public var turns: [Turn]
        /// How many contexts the REPL holds (`context_0` … `context_<n-1>`; they are variables).
        public var contextCount: Int
        /// The model's variables, pickled, by name.
        public var variables: [String: Data]
        /// Variables that were not saved.
        public var skipped: [Skipped]
        /// The Python that pickled the variables, for example `"3.11.2"`.
        public var pythonVersion: String

        /// Creates a snapshot (sessions make their own with ``RLMSession/snapshot()``).
        public init(turns: [Turn], contextCount: Int, variables: [String: Data], skipped: [Skipped], pythonVersion: String) {
            self.turns = turns
            self.contextCount = contextCount
            self.variables = variables
            self.skipped = skipped
            self.pythonVersion = pythonVersion
        }
    }

    private let configuration: RLMConfiguration
    private var repl: (environment: REPLEnvironment, binding: REPLBinding)?
    private var contexts = 0
    private var turns: [Snapshot.Turn] = []
    private var pending: Snapshot?
    private var closed = false
    /// Whether a turn (or the close) holds the session, and who waits for it, first come first served.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(configuration: RLMConfiguration, restoring snapshot: Snapshot? = nil) {
        self.configuration = configuration
        if let snapshot {
            pending = snapshot
            turns = snapshot.turns
            contexts = snapshot.contextCount
        }
    }

    /// Answers `query`, adding `context` to the REPL first; `observer` sees each event as it happens.
    public func complete(
        query: String, context: RLMContext, trajectory: TrajectoryWriter? = nil,
        observer: (@Sendable (RLMEvent) -> Void)? = nil
    ) async throws -> RLMResult {
        try await turn(query: query, context: context, trajectory: trajectory, observer: observer)
    }

    /// Answers `query` over what the REPL already holds: `context` stays the latest context an
    /// earlier turn added. Throws ``RLMError/Code/invalidContext`` when no turn has added one.
    public func complete(
        query: String, trajectory: TrajectoryWriter? = nil, observer: (@Sendable (RLMEvent) -> Void)? = nil
    ) async throws -> RLMResult {
        try await turn(query: query, context: nil, trajectory: trajectory, observer: observer)
    }

    private func turn(
        query: String, context: RLMContext?, trajectory: TrajectoryWriter?, observer: (@Sendable (RLMEvent) -> Void)?
    ) async throws -> RLMResult {
        try configuration.validate()
        await acquire()
        defer { release() }
        guard !closed else { throw RLMError(code: .sessionClosed, message: "the session is closed: start a new one with RLM.session()") }
        let sink = EventSink(continuation: nil, trajectory: trajectory, observer: observer, start: .now, redact: Redactor(configuration))
        defer { sink.finish() }
        if context == nil && contexts == 0 {
            throw RLMError(code: .invalidContext, message: "this session holds no context yet: give the first turn one")
        }
        let (environment, binding) = try await prepare()
        let description: String
        if let context {
            description = try await environment.addContext(context, index: contexts)
            contexts += 1
        } else {
            description = "the latest of the \(contexts) context(s) earlier turns added (context_0 to context_\(contexts - 1))"
        }
        try await environment.setHistory(turns.map { ($0.query, $0.answer) })
        let result = try await RLM.runRoot(
            configuration, query: query, contextDescription: description, repl: environment, binding: binding,
            persistent: true, sink: sink)
        turns.append(Snapshot.Turn(query: query, answer: result.answer, usage: result.usage))
        return result
    }

    /// The session as it stands, once the turn in progress (if any) has ended: see ``Snapshot``.
    public func snapshot() async throws -> Snapshot {
        await acquire()
        defer { release() }
        guard !closed else { throw RLMError(code: .sessionClosed, message: "the session is closed: take its snapshot before closing it") }
        if let pending { return pending }
        var variables: [String: Data] = [:]
        var skipped: [Snapshot.Skipped] = []
        if let repl {
            do {
                let saved = try await repl.environment.snapshotVariables()
                variables = saved.saved
                skipped = saved.skipped.map { Snapshot.Skipped(name: $0.name, reason: $0.reason) }
            } catch let error as PythonError {
                throw RLMError(code: .pythonFailed, message: "the session's variables could not be saved: \(error)", cause: error)
            }
        }
        return Snapshot(
            turns: turns, contextCount: contexts, variables: variables, skipped: skipped, pythonVersion: Python.version)
    }

    private func prepare() async throws -> (REPLEnvironment, REPLBinding) {
        if let repl { return repl }
        let binding = REPLBinding(node: NodeInfo(id: 0, parentID: nil, depth: 0))
        let environment = try await REPLEnvironment(name: "session", configuration: configuration, binding: binding)
        if let snapshot = pending {
            do {
                try await environment.restoreVariables(snapshot.variables, contextCount: snapshot.contextCount)
            } catch let error as PythonError {
                await environment.close()
                throw RLMError(
                    code: .pythonFailed,
                    message: "the session snapshot could not be restored (pickled by Python \(snapshot.pythonVersion), loading in \(Python.version)): \(error)",
                    cause: error)
            }
            pending = nil
        }
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
