import CPython
import CRLMSandbox
import Foundation
import Synchronization

/// An isolated set of Python globals: one REPL.
///
/// Each namespace has its own `globals` and runs its code one job at a time on a thread of a
/// process-wide pool, so several namespaces execute at once (taking turns on the GIL) without
/// sharing variables, context variables or output, and an idle namespace holds no thread.
///
/// ```swift
/// let namespace = try await PythonNamespace()
/// try await namespace.set("context", to: .string(hugeText))
/// let result = try await namespace.execute("print(len(context))", timeout: .seconds(5))
/// print(result.stdout)
/// await namespace.close()
/// ```
public final class PythonNamespace: Sendable {
    /// Namespace settings.
    public struct Configuration: Sendable {
        /// A name for the namespace, for people reading logs and debuggers. Defaults to `"repl"`.
        public var name: String
        /// The most characters of stdout (and of stderr) kept per execution; the middle of longer
        /// output is replaced by a marker. `nil` keeps everything. Defaults to `nil`.
        public var maxOutputCharacters: Int?
        /// How long stopped code may take to return before the namespace is abandoned.
        /// Defaults to 5 seconds: stopping needs the GIL, which can take a while to win when
        /// many threads run Python at once.
        public var stopGracePeriod: Duration
        /// Runs everything in the namespace, and every thread its code starts, under this
        /// sandbox. The namespace also gets its own copy of the builtins, and a cell that rebinds
        /// a name in the shared `builtins` module has it put back when it ends. Defaults to
        /// `nil`: the code has the host's authority.
        public var sandbox: PythonSandbox?
        /// The namespace's level in the thread pool (``PythonThreads``): each level has its own
        /// limit of threads, so code that waits on another namespace (a parent RLM's cell on its
        /// children's) must give that namespace a deeper level, or the waiting code can hold
        /// every thread the other needs. The engine uses the RLM depth. Defaults to 0; levels
        /// past 15 share level 15's threads.
        public var level: Int
        /// For tests: a pause, with the GIL released, between the start of an execution's
        /// running time and its first line, as a wait for the GIL on a busy host would be.
        var pauseBeforeFirstLine: Duration?

        /// Creates a configuration.
        public init(
            name: String = "repl", maxOutputCharacters: Int? = nil, stopGracePeriod: Duration = .seconds(5),
            sandbox: PythonSandbox? = nil, level: Int = 0
        ) {
            self.name = name
            self.maxOutputCharacters = maxOutputCharacters
            self.stopGracePeriod = stopGracePeriod
            self.sandbox = sandbox
            self.level = level
        }
    }

    private enum State: Sendable {
        case open
        case abandoned
        case closed
    }

    /// The namespace's settings.
    public let configuration: Configuration
    private let lane: PythonLane
    private let globals: UnsafeSendableObject
    private let support: UnsafeSendableObject
    private let control = ExecutionControl()
    private let state = Mutex(State.open)
    private let cellCount = Atomic<Int>(0)
    private let identifier: Int

    private static let namespaceCount = Atomic<Int>(0)

    /// Creates a namespace with empty globals (only `__name__ == "__main__"` and the builtins).
    public init(configuration: Configuration = Configuration()) async throws {
        try Interpreter.ensureStarted()
        self.configuration = configuration
        self.identifier = Self.namespaceCount.add(1, ordering: .relaxed).newValue
        let policy = try configuration.sandbox?.makePolicy()
        let lane = PythonLane(policy: policy, level: configuration.level)
        self.lane = lane
        let sandboxed = policy != nil
        let (globals, support) = try await lane.run { gil in
            // A sandboxed namespace gets its own builtins dict, so that rebinding a builtin there
            // does not reach other namespaces.
            let builtins = sandboxed
                ? try checked(PyDict_Copy(Bootstrap.handles.pristineBuiltins), gil)
                : PythonObject(borrowing: Bootstrap.handles.builtins)
            let dict = try checked(PyDict_New(), gil)
            try dict.setItem("__name__", try "__main__".makePythonObject(gil), gil)
            try dict.setItem("__builtins__", builtins, gil)
            let support = try checked(PyDict_New(), gil)
            try support.setItem("__name__", try "__host__".makePythonObject(gil), gil)
            try support.setItem("__builtins__", builtins, gil)
            try support.setItem("user_globals", dict, gil)
            return (UnsafeSendableObject(dict.passRetained()), UnsafeSendableObject(support.passRetained()))
        }
        self.globals = globals
        self.support = support
    }

    deinit {
        lane.stop()
        // Whatever thread releases them, the finalizers of what they hold run under the
        // namespace's own sandbox; cleared as `close()` clears them, so a namespace dropped
        // without `close()` frees its objects just as promptly.
        ReferencePool.defer(support.pointer, under: lane.policy, clearing: true)
        ReferencePool.defer(globals.pointer, under: lane.policy, clearing: true)
    }

    private func checkOpen() throws {
        switch state.withLock({ $0 }) {
        case .open: return
        case .abandoned:
            throw PythonError(code: .abandoned, message: "this namespace was abandoned after code that could not be stopped; create a new one")
        case .closed:
            throw PythonError(code: .closed, message: "the Python namespace was closed")
        }
    }

    /// Runs `body` on a pool thread with the GIL held and the globals `dict`, after the
    /// namespace's earlier work.
    public func withGIL<T: Sendable>(_ body: @escaping @Sendable (borrowing PythonGIL, PythonObject) throws -> T) async throws -> T {
        try checkOpen()
        let globals = self.globals
        return try await lane.run { gil in try body(gil, PythonObject(borrowing: globals.pointer)) }
    }

    /// Binds `name` to a value in the globals.
    public func set(_ name: String, to value: some PythonConvertible & Sendable) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try value.makePythonObject(gil), gil)
        }
    }

    /// Binds `name` to a `str` decoded from UTF-8 bytes, with a single copy into the new string.
    ///
    /// Throws ``PythonError/Code/conversion`` naming the byte offset when the data is not UTF-8.
    public func setString(_ name: String, utf8 data: Data) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try PythonObject.string(utf8: data, gil), gil)
        }
    }

    /// Binds `name` to the text of a UTF-8 file, read straight into the new `str`
    /// (see ``PythonObject/string(contentsOfFile:_:)``).
    public func setString(_ name: String, contentsOfFile path: String) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try PythonObject.string(contentsOfFile: path, gil), gil)
        }
    }

    /// Binds `name` to a read-only `mmap.mmap` of a file (see ``PythonObject/mapping(contentsOfFile:_:)``):
    /// code reads the pages it touches, so the file may be larger than memory.
    public func setMapping(_ name: String, contentsOfFile path: String) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try PythonObject.mapping(contentsOfFile: path, gil), gil)
        }
    }

    /// Binds `name` to a read-only mapping of an open file (the worker's mapped contexts).
    package func setMapping(_ name: String, fromDescriptor descriptor: Int32) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try PythonObject.mapping(descriptor: descriptor, describedAs: "the context", gil), gil)
        }
    }

    /// Binds `name` to the text of an open file or memory file (the worker's contexts).
    package func setString(_ name: String, fromDescriptor descriptor: Int32, length: Int) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try PythonObject.string(descriptor: descriptor, describedAs: "the context", gil), gil)
        }
    }

    /// The value bound to `name` in the globals, or `nil` if there is none.
    public func value(of name: String) async throws -> PythonValue? {
        try await withGIL { gil, globals in
            guard let item = PyDict_GetItemString(globals.pointer, name) else { return nil }
            return try PythonValue(PythonObject(borrowing: item), gil)
        }
    }

    /// Installs a Swift closure as a Python function named `function.name` in the globals.
    ///
    /// Its async waits are interrupted when this namespace's execution is stopped.
    public func install(_ function: NativeFunction) async throws {
        try await install([function])
    }

    /// Installs several Swift closures at once (one hop to a pool thread).
    public func install(_ functions: [NativeFunction]) async throws {
        let control = self.control
        try await withGIL { gil, globals in
            for function in functions {
                try globals.setItem(function.name, try NativeFunctionBox.makeFunction(function, control: control, gil), gil)
            }
        }
    }

    /// Evaluates one expression and returns its value.
    public func evaluate(_ expression: String) async throws -> PythonValue {
        try await withGIL { gil, globals in
            guard let result = PyRun_StringFlags(expression, Py_eval_input, globals.pointer, globals.pointer, nil) else {
                throw PythonError.fetch(gil)
            }
            return try PythonValue(PythonObject(owning: result), gil)
        }
    }

    /// Runs host code in the namespace's private scope: a second set of globals that user code
    /// cannot see, where `user_globals` is the user's globals `dict`.
    ///
    /// Use it for helpers the host needs after each cell (reading an answer, restoring names)
    /// without exposing them to the code being run.
    ///
    /// Long code (1,000 characters or more, such as helpers every namespace runs) is compiled once
    /// per process and its code object reused: compiling 15 KB of helpers took 2.7 ms, running
    /// them 0.05 ms.
    public func executePrivately(_ code: String) async throws {
        let support = self.support
        try await withGIL { gil, _ in
            let compiled = try HostCode.compiled(code, gil)
            guard let result = withExtendedLifetime(compiled, { PyEval_EvalCode(compiled.pointer, support.pointer, support.pointer) }) else {
                throw PythonError.fetch(gil)
            }
            rlm_decref(result)
        }
    }

    /// Evaluates an expression in the private scope (see ``executePrivately(_:)``).
    public func evaluatePrivately(_ expression: String) async throws -> PythonValue {
        let support = self.support
        return try await withGIL { gil, _ in
            guard let result = PyRun_StringFlags(expression, Py_eval_input, support.pointer, support.pointer, nil) else {
                throw PythonError.fetch(gil)
            }
            return try PythonValue(PythonObject(owning: result), gil)
        }
    }

    /// Runs a cell of code, as a REPL does: output is captured for this execution only, the value
    /// of a final expression is echoed, and an exception is reported with its traceback.
    ///
    /// - Parameter timeout: stops the code when it runs longer (within a few milliseconds for
    ///   bytecode, even in loops that catch `BaseException`). `nil` means no deadline.
    /// - Returns: the outcome. Exceptions in the code are part of the result, not thrown.
    /// - Throws: `CancellationError` if the task is cancelled (the code is stopped first), and
    ///   ``PythonError`` if the namespace is closed or abandoned.
    public func execute(_ code: String, timeout: Duration? = nil) async throws -> ExecutionResult {
        try await execute(code, timeout: timeout, then: nil)
    }

    /// Runs a cell of code as ``execute(_:timeout:)`` does, then evaluates `expression` (if any)
    /// in the private scope in the same job, and puts its value in ``ExecutionResult/followUp``:
    /// one hop to a pool thread instead of two, for hosts that read state after every cell.
    public func execute(_ code: String, timeout: Duration?, then expression: String?) async throws -> ExecutionResult {
        try checkOpen()
        let support = self.support
        let cell = cellCount.add(1, ordering: .relaxed).newValue
        let filename = "<cell \(identifier).\(cell)>"
        let limit = configuration.maxOutputCharacters
        let grace = Self.nanoseconds(configuration.stopGracePeriod)
        let runningTime = timeout.map { Self.nanoseconds($0) }
        let pause = configuration.pauseBeforeFirstLine.map { Self.nanoseconds($0) }
        let control = self.control
        let globals = self.globals
        let ticketBox = Mutex<ExecutionTicket?>(nil)

        let result: ExecutionResult = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ticket = ExecutionTicket(continuation)
                ticketBox.withLock { $0 = ticket }
                let accepted = lane.submit({ gil in
                    let outcome = Self.run(
                        code, filename: filename, limit: limit, globals: globals, control: control,
                        ticket: ticket, runningTime: runningTime, pause: pause, grace: grace,
                        onAbandon: {
                            self.state.withLock { $0 = .abandoned }
                            self.lane.abandon(failing: PythonError(
                                code: .abandoned, message: "this namespace was abandoned after code that could not be stopped; create a new one"))
                            ticket.finish(.success(ExecutionResult(
                                status: .abandoned,
                                error: PythonError(code: .abandoned, typeName: "ExecutionInterrupted",
                                                   message: "the code did not stop after its deadline (a long-running C call?); the namespace was abandoned"),
                                duration: timeout ?? .zero)))
                        }, gil)
                    guard let expression, case .success(var result) = outcome, result.status != .abandoned else {
                        ticket.finish(outcome)
                        return
                    }
                    if let value = PyRun_StringFlags(expression, Py_eval_input, support.pointer, support.pointer, nil) {
                        result.followUp = try? PythonValue(PythonObject(owning: value), gil)
                    } else {
                        PyErr_Clear()
                    }
                    ticket.finish(.success(result))
                }, fail: { ticket.finish(.failure($0)) })
                if !accepted {
                    ticket.finish(.failure(PythonError(code: .closed, message: "the Python namespace was closed")))
                }
                if Task.isCancelled { control.requestStop(ticket, reason: .cancelled) }
            }
        } onCancel: {
            if let ticket = ticketBox.withLock({ $0 }) { control.requestStop(ticket, reason: .cancelled) }
        }
        return result
    }

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// The body of an execution, on a pool thread with the GIL held.
    private static func run(
        _ code: String, filename: String, limit: Int?, globals: UnsafeSendableObject, control: ExecutionControl,
        ticket: ExecutionTicket, runningTime: UInt64?, pause: UInt64?, grace: UInt64,
        onAbandon: @escaping @Sendable () -> Void, _ gil: borrowing PythonGIL
    ) -> Result<ExecutionResult, any Error> {
        let handles = Bootstrap.handles!
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let limitObject = try limit.makePythonObject(gil)
            _ = try PythonObject(borrowing: handles.beginCapture).call([limitObject], gil)
            var error: PythonError?
            var status = ExecutionResult.Status.completed
            let compiled: PythonObject?
            do {
                compiled = try PythonObject(borrowing: handles.compileCell).call(
                    [try code.makePythonObject(gil), try filename.makePythonObject(gil)], gil)
            } catch let syntaxError as PythonError {
                compiled = nil
                status = .failed
                error = syntaxError
            }
            if let compiled {
                var execution: UInt64 = 0
                guard let slot = rlm_sandbox_begin_execution(compiled.pointer, runningTime == nil ? 0 : 1, &execution) else {
                    _ = try? PythonObject(borrowing: handles.endCapture).call([], gil)
                    return .failure(PythonError(code: .exception, typeName: "MemoryError", message: "out of memory starting the execution"))
                }
                let target = ExecutionControl.Running(ticket: ticket, slot: slot, execution: execution)
                if let reason = control.begin(ticket, slot: slot, execution: execution) {
                    rlm_sandbox_end_execution()
                    _ = try? PythonObject(borrowing: handles.endCapture).call([], gil)
                    return reason == .cancelled ? .failure(CancellationError()) : .success(ExecutionResult(status: .timedOut, error: reason.error))
                }
                // The running time counts from the code's first line, not from the call: time
                // spent waiting for a thread or the GIL on a busy host is not the code's.
                Watchdog.shared.watch(control, ticket: ticket, target: target, runningTime: runningTime, grace: grace, onAbandon: onAbandon)
                if let pause { gil.allowThreads { _ = usleep(UInt32(pause / 1_000)) } }
                let value = withExtendedLifetime(compiled) {
                    PyEval_EvalCode(compiled.pointer, globals.pointer, globals.pointer)
                }
                // Swift state first, then the thread's stop (which can hand the GIL over), with no
                // lock held across it.
                let (stopReason, abandoned) = control.end()
                rlm_sandbox_end_execution()
                Watchdog.shared.unwatch(ticket)
                if abandoned {
                    // Its caller already has its answer; the namespace takes no more work.
                    if let value { rlm_decref(value) } else { PyErr_Clear() }
                    _ = try? PythonObject(borrowing: handles.endCapture).call([], gil)
                    return .success(ExecutionResult(status: .abandoned))
                }
                if let value {
                    rlm_decref(value)
                } else {
                    error = PythonError.fetch(gil)
                    status = .failed
                }
                switch stopReason {
                case .cancelled?:
                    _ = try? PythonObject(borrowing: handles.endCapture).call([], gil)
                    return .failure(CancellationError())
                case .timedOut?:
                    status = .timedOut
                    var stopped = StopReason.timedOut.error
                    stopped.traceback = error?.traceback ?? ""
                    error = stopped
                case nil:
                    break
                }
            }
            let captured = try PythonObject(borrowing: handles.endCapture).call([], gil)
            let parts = try PythonValue(captured, gil).listValue ?? []
            return .success(ExecutionResult(
                status: status,
                stdout: parts.first?.stringValue ?? "",
                stderr: parts.count > 2 ? parts[2].stringValue ?? "" : "",
                stdoutOmittedCharacters: parts.count > 1 ? parts[1].intValue ?? 0 : 0,
                stderrOmittedCharacters: parts.count > 3 ? parts[3].intValue ?? 0 : 0,
                error: error,
                duration: clock.now - start))
        } catch {
            return .failure(error)
        }
    }

    /// Lets the namespace's queued work finish, refuses more, and releases its globals.
    ///
    /// The globals are cleared first, so objects that refer back to them (functions defined in
    /// the namespace) are freed too.
    public func close() async {
        guard state.withLock({ current -> Bool in
            guard current == .open else { return false }
            current = .closed
            return true
        }) else { return }
        let globals = self.globals
        let support = self.support
        _ = try? await lane.run { _ in
            PyDict_Clear(support.pointer)
            PyDict_Clear(globals.pointer)
        }
        lane.stop()
    }
}

/// Code objects of long host code, compiled once per process (touched only with the GIL held).
private enum HostCode {
    nonisolated(unsafe) static var cache: [String: UnsafeSendableObject] = [:]
    static let cachedLength = 1_000
    static let capacity = 32

    static func compiled(_ code: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        if code.utf8.count >= cachedLength, let hit = cache[code] { return PythonObject(borrowing: hit.pointer) }
        let compiled = try checked(Py_CompileStringExFlags(code, "<host>", Py_file_input, nil, -1), gil)
        guard code.utf8.count >= cachedLength else { return compiled }
        if cache.count >= capacity {
            for entry in cache.values { rlm_decref(entry.pointer) }
            cache.removeAll()
        }
        cache[code] = UnsafeSendableObject(compiled.passRetained())
        return compiled
    }
}

/// A Python object pointer that is only dereferenced with the GIL held; the owner keeps one
/// reference for the wrapper's lifetime.
struct UnsafeSendableObject: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<PyObject>
    init(_ pointer: UnsafeMutablePointer<PyObject>) { self.pointer = pointer }
}
