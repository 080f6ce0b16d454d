import CPython
import Synchronization

/// An owned (strong) reference to a Python object.
///
/// Not `Sendable`: use it while holding the GIL on the thread that created it. Dropping it is
/// always safe, though: if the last Swift reference goes away on a thread without the GIL, the
/// decrement is deferred to the next time any thread takes the GIL (PyO3's reference pool).
public final class PythonObject {
    let pointer: UnsafeMutablePointer<PyObject>

    /// Takes ownership of a new reference.
    init(owning pointer: UnsafeMutablePointer<PyObject>) {
        self.pointer = pointer
    }

    /// Takes a new reference to a borrowed one.
    init(borrowing pointer: UnsafeMutablePointer<PyObject>) {
        rlm_incref(pointer)
        self.pointer = pointer
    }

    /// Hands the reference over to C code that steals it.
    func passRetained() -> UnsafeMutablePointer<PyObject> {
        rlm_incref(pointer)
        return pointer
    }

    deinit {
        if PyGILState_Check() != 0 {
            rlm_decref(pointer)
        } else {
            ReferencePool.defer(pointer)
        }
    }

    /// The object's reference count (for tests and diagnostics).
    public func referenceCount(_ gil: borrowing PythonGIL) -> Int {
        rlm_refcount(pointer)
    }

    /// The name of the object's type, for example `"dict"`.
    public func typeName(_ gil: borrowing PythonGIL) -> String {
        String(cString: rlm_type_name(pointer))
    }

    /// `repr(self)`.
    public func repr(_ gil: borrowing PythonGIL) throws -> String {
        guard let result = PyObject_Repr(pointer) else { throw PythonError.fetch(gil) }
        return try String(PythonObject(owning: result), gil)
    }

    /// `getattr(self, name)`.
    public func attribute(_ name: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        guard let result = PyObject_GetAttrString(pointer, name) else { throw PythonError.fetch(gil) }
        return PythonObject(owning: result)
    }

    /// `self[key] = value` for a `dict`.
    ///
    /// Raw pointers are only read inside methods like this one, whose parameters Swift keeps
    /// alive for the whole call: reading `.pointer` off a temporary would let Swift release the
    /// object before the C call uses it.
    public func setItem(_ key: String, _ value: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard PyDict_SetItemString(pointer, key, value.pointer) == 0 else { throw PythonError.fetch(gil) }
    }

    /// Calls the object with positional arguments.
    public func call(_ arguments: [PythonObject], _ gil: borrowing PythonGIL) throws -> PythonObject {
        try call(arguments, keywords: [:], gil)
    }

    /// Calls the object with positional and keyword arguments.
    public func call(_ arguments: [PythonObject], keywords: [String: PythonObject], _ gil: borrowing PythonGIL) throws -> PythonObject {
        guard let tuple = PyTuple_New(arguments.count) else { throw PythonError.fetch(gil) }
        for (index, argument) in arguments.enumerated() {
            rlm_tuple_set(tuple, index, argument.passRetained())
        }
        defer { rlm_decref(tuple) }
        var dictionary: UnsafeMutablePointer<PyObject>?
        if !keywords.isEmpty {
            guard let made = PyDict_New() else { throw PythonError.fetch(gil) }
            dictionary = made
            for (key, value) in keywords {
                if PyDict_SetItemString(made, key, value.pointer) != 0 {
                    rlm_decref(made)
                    throw PythonError.fetch(gil)
                }
            }
        }
        defer { if let dictionary { rlm_decref(dictionary) } }
        guard let result = PyObject_Call(pointer, tuple, dictionary) else { throw PythonError.fetch(gil) }
        return PythonObject(owning: result)
    }
}

@available(*, unavailable)
extension PythonObject: Sendable {}

/// References dropped on threads that did not hold the GIL, waiting for their decrement.
enum ReferencePool {
    private struct Pointers: @unchecked Sendable {
        var items: [UnsafeMutablePointer<PyObject>] = []
    }
    private static let pending = Mutex(Pointers())
    private static let isDirty = Atomic<Bool>(false)

    static func `defer`(_ pointer: UnsafeMutablePointer<PyObject>) {
        pending.withLock { $0.items.append(pointer) }
        isDirty.store(true, ordering: .releasing)
    }

    /// Performs the deferred decrements. Call with the GIL held.
    static func drain() {
        guard isDirty.load(ordering: .acquiring) else { return }
        let items = pending.withLock { pointers -> [UnsafeMutablePointer<PyObject>] in
            isDirty.store(false, ordering: .relaxed)
            defer { pointers.items = [] }
            return pointers.items
        }
        for pointer in items { rlm_decref(pointer) }
    }

    /// How many decrements are waiting (for tests).
    static var pendingCount: Int { pending.withLock { $0.items.count } }
}
