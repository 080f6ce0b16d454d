import CPython
import Foundation
import Synchronization

/// The arguments of a call from Python to a ``NativeFunction``, converted to Swift values.
public struct PythonArguments: Sendable {
    /// Positional arguments, in order.
    public var positional: [PythonValue]
    /// Keyword arguments, in the order they were passed.
    public var keywords: [PythonValue.Entry]

    /// Creates arguments.
    public init(positional: [PythonValue] = [], keywords: [PythonValue.Entry] = []) {
        self.positional = positional
        self.keywords = keywords
    }

    /// The argument passed at `position` or as `name`, or `nil` when neither was passed.
    public func value(at position: Int, named name: String) -> PythonValue? {
        if let keyword = keywords.last(where: { $0.key == name }) { return keyword.value }
        return position < positional.count ? positional[position] : nil
    }
}

/// A Swift error that chooses the Python exception it becomes when thrown inside a native call.
///
/// Other Swift errors become `RuntimeError` with the error's description; a ``PythonError``
/// becomes the built-in exception it names when there is one.
public protocol PythonExceptionConvertible: Error {
    /// A built-in exception name, such as `"ValueError"` or `"TypeError"`.
    var pythonExceptionTypeName: String { get }
    /// The exception's message.
    var pythonExceptionMessage: String { get }
}

extension PythonError: PythonExceptionConvertible {
    public var pythonExceptionTypeName: String { typeName.isEmpty ? "RuntimeError" : typeName }
    public var pythonExceptionMessage: String { message }

    /// The exception a Swift error thrown in a native call becomes: a ``PythonError`` as it is,
    /// a ``PythonExceptionConvertible`` the exception it names, a cancellation
    /// `ExecutionInterrupted` (code ``Code/interrupted``), anything else `RuntimeError` with the
    /// error's description. A worker sends its host's errors across in this form.
    init(bridging error: any Error) {
        if let error = error as? PythonError {
            self = error
        } else if let convertible = error as? any PythonExceptionConvertible {
            self.init(code: .exception, typeName: convertible.pythonExceptionTypeName, message: convertible.pythonExceptionMessage)
        } else if error is CancellationError {
            self.init(code: .interrupted, typeName: "ExecutionInterrupted", message: "the call was cancelled")
        } else {
            self.init(code: .exception, typeName: "RuntimeError", message: String(describing: error))
        }
    }
}

/// A Swift closure callable from Python as a function.
///
/// ```swift
/// let shout = NativeFunction(name: "shout", documentation: "Upper-cases text.") { arguments in
///     .string((arguments.positional.first?.stringValue ?? "").uppercased())
/// }
/// try await namespace.install(shout)
/// ```
///
/// A synchronous body runs on the calling Python thread with the GIL held: keep it short. An
/// `async` body (an HTTP call, say) runs as a Swift task while the calling thread waits with the
/// GIL released, so other Python threads and namespaces keep running; the wait ends early, with
/// `ExecutionInterrupted` raised in Python, when the execution is stopped or cancelled.
///
/// The waiting thread is the task's executor: it runs the task's jobs itself, so a call makes no
/// round trip through the cooperative thread pool. Child tasks inherit this; give CPU-heavy
/// children `executorPreference: globalConcurrentExecutor` to spread them over the pool, and,
/// as anywhere in Swift concurrency, never block one task synchronously on another. Work that is
/// still pending when the wait ends (a cancelled task finishing) moves to the global executor.
public struct NativeFunction: Sendable {
    enum Body: Sendable {
        case synchronous(@Sendable (PythonArguments) throws -> PythonValue)
        case asynchronous(@Sendable (PythonArguments) async throws -> PythonValue)
    }

    /// The Python name of the function.
    public let name: String
    /// The function's `__doc__`.
    public let documentation: String
    let body: Body

    /// A function whose body runs synchronously with the GIL held.
    public init(name: String, documentation: String = "", _ body: @escaping @Sendable (PythonArguments) throws -> PythonValue) {
        self.name = name
        self.documentation = documentation
        self.body = .synchronous(body)
    }

    /// A function whose body is async Swift work; the caller waits with the GIL released.
    public init(name: String, documentation: String = "", async body: @escaping @Sendable (PythonArguments) async throws -> PythonValue) {
        self.name = name
        self.documentation = documentation
        self.body = .asynchronous(body)
    }
}

/// What a Python function object created from a ``NativeFunction`` holds (through a capsule).
final class NativeFunctionBox {
    let function: NativeFunction
    let control: ExecutionControl?

    init(_ function: NativeFunction, control: ExecutionControl?) {
        self.function = function
        self.control = control
    }

    /// Creates the Python function object. GIL held.
    static func makeFunction(_ function: NativeFunction, control: ExecutionControl?, _ gil: borrowing PythonGIL) throws -> PythonObject {
        let box = Unmanaged.passRetained(NativeFunctionBox(function, control: control))
        guard let capsule = PyCapsule_New(box.toOpaque(), capsuleName, releaseCapsule) else {
            box.release()
            throw PythonError.fetch(gil)
        }
        defer { rlm_decref(capsule) }
        let definition = MethodDefinitions.definition(name: function.name, documentation: function.documentation)
        return try checked(PyCFunction_NewEx(definition, capsule, nil), gil)
    }

    /// Runs the call. GIL held on entry and on return; returns a new reference or nil with an exception set.
    func invoke(arguments: UnsafeMutablePointer<PyObject>?, keywords: UnsafeMutablePointer<PyObject>?) -> UnsafeMutablePointer<PyObject>? {
        let gil = PythonGIL()
        let converted: PythonArguments
        do {
            converted = try Self.convert(arguments: arguments, keywords: keywords, function: function.name)
        } catch {
            return Self.raise(error)
        }
        let result: Result<PythonValue, any Error>
        switch function.body {
        case .synchronous(let body):
            do { result = .success(try body(converted)) } catch { result = .failure(error) }
        case .asynchronous(let body):
            result = Self.wait(for: body, arguments: converted, control: control, gil)
        }
        switch result {
        case .success(let value):
            do {
                return try value.makePythonObject(gil).passRetained()
            } catch {
                return Self.raise(error)
            }
        case .failure(let error):
            return Self.raise(error)
        }
    }

    private static func wait(
        for body: @escaping @Sendable (PythonArguments) async throws -> PythonValue,
        arguments: PythonArguments,
        control: ExecutionControl?,
        _ gil: borrowing PythonGIL
    ) -> Result<PythonValue, any Error> {
        let waiter = NativeCallWaiter()
        if let reason = control?.register(waiter) { return .failure(reason.error) }
        defer { control?.unregister(waiter) }
        waiter.attach(
            Task(executorPreference: waiter) {
                do {
                    waiter.complete(.success(try await body(arguments)))
                } catch {
                    waiter.complete(.failure(error))
                }
            })
        return gil.allowThreads { PythonThreadPool.shared.whileWaiting { waiter.wait() } }
    }

    private static func convert(arguments: UnsafeMutablePointer<PyObject>?, keywords: UnsafeMutablePointer<PyObject>?, function: String) throws -> PythonArguments {
        var result = PythonArguments()
        let gil = PythonGIL()
        if let arguments {
            let count = PyTuple_Size(arguments)
            result.positional.reserveCapacity(count)
            for index in 0..<count {
                guard let item = PyTuple_GetItem(arguments, index) else { throw PythonError.fetch(gil) }
                do {
                    result.positional.append(try PythonValue(PythonObject(borrowing: item), gil))
                } catch let error as PythonError {
                    throw PythonError(code: .conversion, typeName: "TypeError", message: "\(function)() argument \(index + 1): \(error.message)")
                }
            }
        }
        if let keywords, case .dictionary(let entries) = try PythonValue(PythonObject(borrowing: keywords), gil) {
            result.keywords = entries
        }
        return result
    }

    /// Sets the Python exception for a Swift error and returns nil.
    static func raise(_ error: any Error) -> UnsafeMutablePointer<PyObject>? {
        let bridged = PythonError(bridging: error)
        if bridged.code == .timedOut || bridged.code == .interrupted {
            PyErr_SetString(Bootstrap.handles.executionInterrupted, bridged.message)
            return nil
        }
        let typeName = bridged.pythonExceptionTypeName
        let message = bridged.message
        var type = rlm_exc_runtime_error()
        if let candidate = PyObject_GetAttrString(Bootstrap.handles.builtins, typeName) {
            if PyObject_IsSubclass(candidate, rlm_exc_base_exception()) == 1 {
                type = candidate
            }
            rlm_decref(candidate)
        }
        PyErr_Clear()
        PyErr_SetString(type, message)
        return nil
    }
}

nonisolated(unsafe) private let capsuleName: UnsafePointer<CChar> = {
    UnsafePointer(strdup("swift_rlm.native_function")!)
}()

private let releaseCapsule: PyCapsule_Destructor = { capsule in
    guard let capsule, let pointer = PyCapsule_GetPointer(capsule, capsuleName) else { return }
    Unmanaged<NativeFunctionBox>.fromOpaque(pointer).release()
}

private let trampoline: rlm_cfunction_with_keywords = { capsule, arguments, keywords in
    guard let capsule, let pointer = PyCapsule_GetPointer(capsule, capsuleName) else { return nil }
    let box = Unmanaged<NativeFunctionBox>.fromOpaque(pointer).takeUnretainedValue()
    return box.invoke(arguments: arguments, keywords: keywords)
}

/// `PyMethodDef`s must outlive every function made from them, and their strings too: one per
/// distinct name and docstring, allocated once and kept for the life of the process.
enum MethodDefinitions {
    private struct Table: @unchecked Sendable {
        var definitions: [String: UnsafeMutablePointer<PyMethodDef>] = [:]
    }
    private static let table = Mutex(Table())

    static func definition(name: String, documentation: String) -> UnsafeMutablePointer<PyMethodDef> {
        table.withLock { table in
            let key = name + "\u{0}" + documentation
            if let existing = table.definitions[key] { return existing }
            let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
            definition.initialize(to: rlm_method_def(strdup(name), trampoline, strdup(documentation)))
            table.definitions[key] = definition
            return definition
        }
    }
}
