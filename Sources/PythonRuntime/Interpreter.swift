import CPython
import CRLMSandbox
import Foundation

/// Process-wide interpreter state: started lazily, exactly once, with an isolated configuration.
///
/// The interpreter is initialised on a short-lived dedicated thread (so no Python code runs on the
/// caller's thread, which may belong to Swift's cooperative pool); that thread releases the GIL
/// before it ends. It is never finalised: worker threads may outlive any caller, and CPython does
/// not support re-initialisation after `Py_FinalizeEx` in the same process reliably.
enum Interpreter {
    /// The outcome of start-up, computed once (Swift globals are initialised exactly once, thread-safely).
    private static let startup: Result<StandardPaths, PythonError> = start()

    /// Starts the interpreter if needed; throws the start-up error (every time) if it could not start.
    static func ensureStarted() throws(PythonError) {
        _ = try startup.get()
    }

    /// The interpreter's own directories (it must be started).
    static var standardPaths: StandardPaths {
        (try? startup.get()) ?? StandardPaths(readable: [], native: [])
    }

    /// The system Python executable that matches the linked libpython, so that `sys.executable`
    /// and `sys.prefix` never point at a pyenv shim or a virtual environment found on `PATH`.
    static var systemProgramName: String {
        let version = "\(PY_MAJOR_VERSION).\(PY_MINOR_VERSION)"
        for candidate in ["/usr/bin/python\(version)", "/usr/local/bin/python\(version)"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "python\(version)"
    }

    private static func start() -> Result<StandardPaths, PythonError> {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<StandardPaths, PythonError> = .failure(
            PythonError(code: .initialization, message: "the interpreter did not start"))
        let thread = Thread {
            outcome = initializeOnThisThread()
            done.signal()
        }
        thread.name = "rlm.python.init"
        thread.start()
        done.wait()
        return outcome
    }

    private static func initializeOnThisThread() -> Result<StandardPaths, PythonError> {
        var config = PyConfig()
        PyConfig_InitIsolatedConfig(&config)
        defer { PyConfig_Clear(&config) }
        // Isolated: ignores PYTHON* environment variables, the user site directory and the
        // current directory. The host process owns signals.
        config.install_signal_handlers = 0
        config.site_import = 1
        var status = withUnsafeMutablePointer(to: &config) { pointer in
            PyConfig_SetBytesString(pointer, &pointer.pointee.program_name, systemProgramName)
        }
        if PyStatus_Exception(status) != 0 {
            return .failure(Self.error(from: status))
        }
        // The sandbox's audit hook goes in before the interpreter exists, so that no Python code
        // can ever run without it (PEP 578: such hooks cannot be removed from Python).
        if rlm_sandbox_install_hook() != 0 {
            return .failure(PythonError(code: .initialization, message: "could not install the sandbox's audit hook"))
        }
        status = Py_InitializeFromConfig(&config)
        if PyStatus_Exception(status) != 0 {
            return .failure(Self.error(from: status))
        }
        let paths: StandardPaths
        do {
            try Bootstrap.install()
            paths = try Bootstrap.standardPaths()
        } catch {
            _ = PyEval_SaveThread()
            return .failure(error)
        }
        // Hand the GIL back: from now on every thread takes it through PyGILState_Ensure.
        _ = PyEval_SaveThread()
        return .success(paths)
    }

    private static func error(from status: PyStatus) -> PythonError {
        let message = status.err_msg.map { String(cString: $0) } ?? "unknown error"
        return PythonError(
            code: .initialization,
            message: "could not start the embedded Python interpreter: \(message) "
                + "(is libpython3-dev installed, and does \(systemProgramName) exist?)"
        )
    }
}
