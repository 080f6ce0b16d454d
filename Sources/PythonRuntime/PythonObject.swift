import CPython
import CRLMSandbox
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
        if rlm_holds_gil() != 0 {
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
    private struct Pending: @unchecked Sendable {
        var items: [Item] = []
    }
    private struct Item {
        var pointer: UnsafeMutablePointer<PyObject>
        var policy: SandboxPolicy?
        var clearing: Bool
    }
    private static let pending = Mutex(Pending())
    private static let isDirty = Atomic<Bool>(false)

    /// Queues a decrement. With a `policy`, the decrement (and any finalizer it runs) happens
    /// under that sandbox, whichever thread drains the pool. With `clearing`, `pointer` is a dict
    /// that is emptied first, so what refers back to it (functions defined in a namespace's
    /// globals) is freed now rather than whenever the cyclic collector next looks.
    static func `defer`(_ pointer: UnsafeMutablePointer<PyObject>, under policy: SandboxPolicy? = nil, clearing: Bool = false) {
        pending.withLock { $0.items.append(Item(pointer: pointer, policy: policy, clearing: clearing)) }
        isDirty.store(true, ordering: .releasing)
    }

    /// Performs the deferred decrements. Call with the GIL held.
    static func drain() {
        guard isDirty.load(ordering: .acquiring) else { return }
        let items = pending.withLock { pending -> [Item] in
            isDirty.store(false, ordering: .relaxed)
            defer { pending.items = [] }
            return pending.items
        }
        for item in items {
            let release = {
                if item.clearing { PyDict_Clear(item.pointer) }
                rlm_decref(item.pointer)
            }
            guard let policy = item.policy else {
                release()
                continue
            }
            let outer = rlm_sandbox_enter(policy.pointer)
            release()
            if let mine = rlm_sandbox_enter(outer) { rlm_sandbox_policy_release(mine) }
            if let outer { rlm_sandbox_policy_release(outer) }
        }
    }

    /// How many decrements are waiting (for tests).
    static var pendingCount: Int { pending.withLock { $0.items.count } }
}
