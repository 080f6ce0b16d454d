import CPython
import Foundation

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

    /// The CPython version whose headers the bridge was built against, for example `"3.13.5"`
    /// (pkg-config's `python3-embed` at build time; 3.11 to 3.14 are supported).
    public static var buildVersion: String {
        "\(PY_MAJOR_VERSION).\(PY_MINOR_VERSION).\(PY_MICRO_VERSION)"
    }

    /// The file of the libpython the process loaded, for example
    /// `"/usr/lib/x86_64-linux-gnu/libpython3.13.so.1.0"`, from `/proc/self/maps`; `nil` where
    /// there is none (a static build, or a system without `/proc`).
    public static var libraryPath: String? {
        // /proc files report no size: read the handle to its end.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/maps"),
            let data = try? handle.readToEnd()
        else { return nil }
        let maps = String(decoding: data, as: UTF8.self)
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = line[slash...]
            if path.split(separator: "/").last?.hasPrefix("libpython") == true { return String(path) }
        }
        return nil
    }
}
