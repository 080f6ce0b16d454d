/// An error raised by the embedded interpreter or by the bridge.
///
/// A Python exception becomes plain strings (type name, message, formatted traceback): a
/// `PythonError` never holds a live Python object, so it is `Sendable` and outlives the GIL.
///
/// ```swift
/// do {
///     _ = try await namespace.evaluate("1/0")
/// } catch let error as PythonError where error.code == .exception {
///     print(error.typeName)   // "ZeroDivisionError"
/// }
/// ```
public struct PythonError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; match the ones you care about.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case initialization, exception, conversion, interrupted, timedOut, abandoned, closed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The interpreter could not start.
        public static let initialization = Code(.initialization)
        /// Python code raised an exception; ``PythonError/typeName`` names it.
        public static let exception = Code(.exception)
        /// A value could not be converted between Swift and Python.
        public static let conversion = Code(.conversion)
        /// The execution was cancelled from outside.
        public static let interrupted = Code(.interrupted)
        /// The execution ran past its deadline and was stopped.
        public static let timedOut = Code(.timedOut)
        /// The execution could not be stopped (for example a long C-level loop) and its
        /// namespace was abandoned; the namespace cannot run code any more.
        public static let abandoned = Code(.abandoned)
        /// The namespace was closed.
        public static let closed = Code(.closed)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The Python exception type's qualified name (for example `"ValueError"`), or `""`.
    public var typeName: String
    /// The exception message, or a description of the bridge failure.
    public var message: String
    /// The formatted Python traceback, `""` when there is none.
    public var traceback: String

    /// Creates an error.
    public init(code: Code, typeName: String = "", message: String, traceback: String = "") {
        self.code = code
        self.typeName = typeName
        self.message = message
        self.traceback = traceback
    }

    public var description: String {
        if typeName.isEmpty { return "PythonError.\(code): \(message)" }
        return "\(typeName): \(message)"
    }
}
