import CPython
import CRLMSandbox

/// The `_swift_rlm` support module, installed once when the interpreter starts.
///
/// It holds what is easier to say in Python than in C (Python/support.py: output capture, cell
/// compilation, traceback formatting, an interruptible `time.sleep`, `ExecutionInterrupted`), and
/// the process-wide half of the sandbox (Python/sandbox.py).
enum Bootstrap {
    struct Handles: @unchecked Sendable {
        let module: UnsafeMutablePointer<PyObject>
        let beginCapture: UnsafeMutablePointer<PyObject>
        let endCapture: UnsafeMutablePointer<PyObject>
        let compileCell: UnsafeMutablePointer<PyObject>
        let formatException: UnsafeMutablePointer<PyObject>
        let executionInterrupted: UnsafeMutablePointer<PyObject>
        let builtins: UnsafeMutablePointer<PyObject>
        /// A `dict` copy of the builtins as the interpreter started, for sandboxed namespaces.
        let pristineBuiltins: UnsafeMutablePointer<PyObject>
    }

    /// Set once during start-up, before any other thread can see the interpreter; never freed.
    nonisolated(unsafe) private(set) static var handles: Handles!

    /// Python/support.py, embedded at build time.
    static let source = String(decoding: PackageResources.support_py, as: UTF8.self)

    /// Python/sandbox.py, embedded at build time: the process-wide half of the sandbox.
    static let sandboxSource = String(decoding: PackageResources.sandbox_py, as: UTF8.self)

    /// Installs the module. Called once, with the GIL held, during start-up.
    static func install() throws(PythonError) {
        guard let sandbox = rlm_sandbox_make_module() else { throw PythonError.fetchRaw() }
        rlm_decref(sandbox)
        guard let module = PyImport_AddModule("_swift_rlm") else { throw PythonError.fetchRaw() }
        rlm_incref(module)
        guard let dict = PyModule_GetDict(module) else { throw PythonError.fetchRaw() }
        guard let builtins = PyImport_ImportModule("builtins") else { throw PythonError.fetchRaw() }
        PyDict_SetItemString(dict, "__builtins__", builtins)
        guard let result = PyRun_StringFlags(source, Py_file_input, dict, dict, nil) else {
            throw PythonError.fetchRaw()
        }
        rlm_decref(result)
        func get(_ name: String) throws(PythonError) -> UnsafeMutablePointer<PyObject> {
            guard let item = PyDict_GetItemString(dict, name) else {
                throw PythonError(code: .initialization, message: "support module lacks \(name)")
            }
            rlm_incref(item)
            return item
        }
        try installSandbox()
        handles = Handles(
            module: module,
            beginCapture: try get("begin_capture"),
            endCapture: try get("end_capture"),
            compileCell: try get("compile_cell"),
            formatException: try get("format_exception"),
            executionInterrupted: try get("ExecutionInterrupted"),
            builtins: builtins,
            pristineBuiltins: try get("pristine_builtins")
        )
        try setLibraryPaths()
    }

    /// Tells the stop machinery which code is the library's, so that stopping a cell never raises
    /// inside library code (and its lock-releasing `finally` clauses).
    private static func setLibraryPaths() throws(PythonError) {
        let directories = try standardPaths().readable.map { $0.hasSuffix("/") ? $0 : $0 + "/" }
        guard let list = PyList_New(0) else { throw PythonError.fetchRaw() }
        defer { rlm_decref(list) }
        for directory in directories {
            guard let item = PyUnicode_FromString(directory) else { throw PythonError.fetchRaw() }
            let appended = PyList_Append(list, item)
            rlm_decref(item)
            if appended < 0 { throw PythonError.fetchRaw() }
        }
        if rlm_sandbox_set_library_paths(list) < 0 { throw PythonError.fetchRaw() }
    }

    /// Installs the process-wide half of the sandbox: the `_swift_rlm_sandbox` C module, then
    /// Python/sandbox.py (guards for what CPython does not audit, the environment view, threads
    /// that inherit their creator's policy). No thread has a policy yet, so nothing is denied.
    private static func installSandbox() throws(PythonError) {
        guard let setup = PyImport_AddModule("_swift_rlm_sandbox_setup"),
            let dict = PyModule_GetDict(setup)
        else { throw PythonError.fetchRaw() }
        guard let result = PyRun_StringFlags(sandboxSource, Py_file_input, dict, dict, nil) else {
            throw PythonError.fetchRaw()
        }
        rlm_decref(result)
    }

    /// Where the interpreter's own code lives: the `sys.path` directories (read by imports) and,
    /// among them, those of the standard library's native extension modules.
    static func standardPaths() throws(PythonError) -> StandardPaths {
        let code = "[p for p in __import__('sys').path if __import__('os').path.isdir(p)]"
        guard let globals = PyDict_New() else { throw PythonError.fetchRaw() }
        defer { rlm_decref(globals) }
        PyDict_SetItemString(globals, "__builtins__", handles.builtins)
        guard let list = PyRun_StringFlags(code, Py_eval_input, globals, globals, nil) else { throw PythonError.fetchRaw() }
        defer { rlm_decref(list) }
        var readable: [String] = []
        for index in 0..<PyList_Size(list) {
            guard let item = PyList_GetItem(list, index), let text = PyUnicode_AsUTF8(item) else { continue }
            readable.append(String(cString: text))
        }
        return StandardPaths(readable: readable, native: readable.filter { $0.hasSuffix("/lib-dynload") })
    }
}

/// The interpreter's own directories, which every sandbox may read.
struct StandardPaths: Sendable {
    /// The `sys.path` directories that exist.
    var readable: [String]
    /// The standard library's native extension directories (`lib-dynload`).
    var native: [String]
}
