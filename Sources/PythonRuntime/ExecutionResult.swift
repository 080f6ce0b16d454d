/// What one execution of code in a ``PythonNamespace`` produced.
public struct ExecutionResult: Sendable, Hashable {
    /// How the execution ended.
    public enum Status: Sendable, Hashable {
        /// The code ran to the end.
        case completed
        /// The code raised an exception (or did not compile); see ``ExecutionResult/error``.
        case failed
        /// The code ran past its deadline and was stopped.
        case timedOut
        /// The code ran past its deadline and could not be stopped (a C-level loop that never
        /// returns to the interpreter); the namespace is abandoned and can no longer run code.
        case abandoned
    }

    /// How the execution ended.
    public var status: Status
    /// What the code wrote to `sys.stdout` (and the echoed value of a final expression).
    public var stdout: String
    /// What the code wrote to `sys.stderr`.
    public var stderr: String
    /// How many characters of `stdout` were cut from the middle to stay within the limit.
    public var stdoutOmittedCharacters: Int
    /// How many characters of `stderr` were cut from the middle to stay within the limit.
    public var stderrOmittedCharacters: Int
    /// The exception, for ``Status/failed``; for ``Status/timedOut`` the stop, with a traceback
    /// that shows the line that was running.
    public var error: PythonError?
    /// Wall-clock time the execution took.
    public var duration: Duration
    /// The value of the private expression asked for with ``PythonNamespace/execute(_:timeout:then:)``,
    /// evaluated right after the code in the same job; `nil` when none was asked for, the code
    /// was abandoned or cancelled, or the expression raised (evaluate it again on its own to see why).
    public var followUp: PythonValue?

    /// Creates a result.
    public init(
        status: Status, stdout: String = "", stderr: String = "", stdoutOmittedCharacters: Int = 0,
        stderrOmittedCharacters: Int = 0, error: PythonError? = nil, duration: Duration = .zero
    ) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutOmittedCharacters = stdoutOmittedCharacters
        self.stderrOmittedCharacters = stderrOmittedCharacters
        self.error = error
        self.duration = duration
    }
}
