import Foundation

/// A place where Python code runs for one REPL: a ``PythonNamespace`` in this process, or a
/// ``PythonWorker`` in a confined process of its own. The RLM engine works with either.
public protocol PythonREPL: AnyObject, Sendable {
    /// Installs a Swift closure as a Python function in the globals.
    func install(_ function: NativeFunction) async throws
    /// Binds `name` to a value in the globals.
    func set(_ name: String, to value: PythonValue) async throws
    /// Binds `name` to the text of a UTF-8 file.
    func setString(_ name: String, contentsOfFile path: String) async throws
    /// Binds `name` to a read-only `mmap.mmap` of a file, which code reads as it touches it.
    func setMapping(_ name: String, contentsOfFile path: String) async throws
    /// Evaluates one expression in the globals.
    func evaluate(_ expression: String) async throws -> PythonValue
    /// Runs host code in the private scope (see ``PythonNamespace/executePrivately(_:)``).
    func executePrivately(_ code: String) async throws
    /// Evaluates an expression in the private scope.
    func evaluatePrivately(_ expression: String) async throws -> PythonValue
    /// Runs a cell of code (see ``PythonNamespace/execute(_:timeout:)``).
    func execute(_ code: String, timeout: Duration?) async throws -> ExecutionResult
    /// Releases the REPL; it cannot be used afterwards.
    func close() async
    /// Installs several functions (one round trip where the REPL can).
    func install(_ functions: [NativeFunction]) async throws
    /// Runs a cell, then evaluates `expression` in the private scope; its value is the result's
    /// ``ExecutionResult/followUp`` (see ``PythonNamespace/execute(_:timeout:then:)``).
    func execute(_ code: String, timeout: Duration?, then expression: String?) async throws -> ExecutionResult
}

extension PythonREPL {
    /// Installs the functions one by one.
    public func install(_ functions: [NativeFunction]) async throws {
        for function in functions { try await install(function) }
    }

    /// Runs the cell, then evaluates `expression` with a second request.
    public func execute(_ code: String, timeout: Duration?, then expression: String?) async throws -> ExecutionResult {
        var result = try await execute(code, timeout: timeout)
        if let expression, result.status != .abandoned {
            result.followUp = try? await evaluatePrivately(expression)
        }
        return result
    }
}

extension PythonNamespace: PythonREPL {
    /// Binds `name` to a value in the globals.
    public func set(_ name: String, to value: PythonValue) async throws {
        try await withGIL { gil, globals in
            try globals.setItem(name, try value.makePythonObject(gil), gil)
        }
    }
}
