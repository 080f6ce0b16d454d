import CPython

/// Proof that the current thread holds the GIL.
///
/// You get one only inside ``Python/withGIL(_:)`` (or a namespace's ``PythonNamespace/withGIL(_:)``),
/// and it is not `Sendable`: it cannot leave the thread that holds the lock. APIs that touch
/// Python objects take it as a parameter, as PyO3 takes `Python<'py>`.
public struct PythonGIL: ~Copyable {
    init() {}

    /// Releases the GIL while `body` runs (a blocking wait, I/O), then takes it back.
    ///
    /// `body` must not touch Python objects; it gets no token.
    public func allowThreads<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let state = PyEval_SaveThread()
        defer { PyEval_RestoreThread(state) }
        return try body()
    }
}

@available(*, unavailable)
extension PythonGIL: Sendable {}

/// Entry points to the embedded interpreter.
public enum Python {
    /// Starts the interpreter if it has not started yet.
    ///
    /// Calling it is optional: every API starts the interpreter on first use. Call it early to
    /// surface a start-up failure (for example a missing libpython) before any work.
    public static func start() throws(PythonError) {
        try Interpreter.ensureStarted()
    }

    /// Runs `body` on the current thread with the GIL held.
    ///
    /// Use it from threads you own. From Swift concurrency, prefer a namespace's async API, which
    /// runs on a Python pool thread: waiting for the GIL here would block a cooperative thread.
    /// Throws ``PythonError/Code/initialization`` if the interpreter cannot start, and whatever
    /// `body` throws.
    public static func withGIL<T>(_ body: (borrowing PythonGIL) throws -> T) throws -> T {
        try Interpreter.ensureStarted()
        let state = PyGILState_Ensure()
        defer { PyGILState_Release(state) }
        ReferencePool.drain()
        return try body(PythonGIL())
    }

    /// The version of the linked interpreter, for example `"3.11.2"`.
    public static var version: String {
        String(cString: Py_GetVersion()).split(separator: " ").first.map(String.init) ?? ""
    }
}
