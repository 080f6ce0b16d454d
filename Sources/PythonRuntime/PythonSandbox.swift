import CRLMSandbox

/// What Python code in a sandboxed ``PythonNamespace`` may do.
///
/// A sandboxed namespace runs its code under a policy checked by a C-level audit hook (PEP 578)
/// that the bridge installs before the interpreter starts and that Python code cannot remove,
/// and by guards on what CPython does not audit. Code in it may read the standard library (the
/// interpreter's `sys.path`), ``readablePaths`` and ``writablePaths``, write only under
/// ``writablePaths``, load only the standard library's native modules and ``nativeModules``, and
/// may not start processes, open sockets (unless ``allowsNetwork``), use `ctypes`, walk the
/// interpreter's objects (`gc.get_objects`, `sys._current_frames`), change signal handlers,
/// exit or crash the process, or touch the host's file descriptors. `os.environ` is a scrubbed
/// copy. A denial raises `PermissionError` naming the rule, for example
/// `[sandbox: network] socket.__new__ is not allowed: …`.
///
/// This is defence in depth, not a boundary against a determined attacker: the code shares the
/// host's address space and interpreter (see docs/security.md).
///
/// ```swift
/// let scratch = URL.temporaryDirectory.appending(path: "scratch").path
/// let namespace = try await PythonNamespace(configuration: .init(sandbox: PythonSandbox(writablePaths: [scratch])))
/// ```
public struct PythonSandbox: Sendable, Hashable {
    /// Directories and files code may read besides the standard library. Defaults to none.
    public var readablePaths: [String]
    /// Directories code may write (and read). The first is the scratch directory: `tempfile`
    /// creates its files there. Defaults to none: no writes.
    public var writablePaths: [String]
    /// Native extension modules code may import besides the standard library's, by name; a name
    /// allows its submodules too (`"numpy"`). Defaults to none.
    public var nativeModules: [String]
    /// Whether code may open sockets. Defaults to `false`.
    public var allowsNetwork: Bool

    /// Creates a sandbox description.
    public init(readablePaths: [String] = [], writablePaths: [String] = [], nativeModules: [String] = [], allowsNetwork: Bool = false) {
        self.readablePaths = readablePaths
        self.writablePaths = writablePaths
        self.nativeModules = nativeModules
        self.allowsNetwork = allowsNetwork
    }

    /// Devices every sandbox may read (`/dev/null`, the random devices).
    static let readableDevices = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]

    /// The C policy for this sandbox, with the interpreter's own paths added.
    func makePolicy() throws(PythonError) -> SandboxPolicy {
        let paths = Interpreter.standardPaths
        let policy = withCStrings(paths.readable + readablePaths + Self.readableDevices) { readable in
            withCStrings(writablePaths + ["/dev/null"]) { writable in
                withCStrings(paths.native) { nativeRoots in
                    withCStrings(nativeModules) { modules in
                        rlm_sandbox_policy_create(
                            readable.baseAddress, readable.count, writable.baseAddress, writable.count,
                            nativeRoots.baseAddress, nativeRoots.count, modules.baseAddress, modules.count,
                            allowsNetwork ? UInt32(RLM_SANDBOX_ALLOW_NETWORK) : 0)
                    }
                }
            }
        }
        guard let policy else { throw PythonError(code: .initialization, message: "out of memory creating a sandbox policy") }
        return SandboxPolicy(policy)
    }
}

/// One reference to a C sandbox policy.
final class SandboxPolicy: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        rlm_sandbox_policy_release(pointer)
    }
}

/// Calls `body` with C strings for `strings`, valid for the call.
package func withCStrings<T>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> T) -> T {
    let copies = strings.map { string -> UnsafeMutablePointer<CChar> in
        let bytes = string.utf8CString
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        _ = UnsafeMutableBufferPointer(start: copy, count: bytes.count).initialize(from: bytes)
        return copy
    }
    defer { copies.forEach { $0.deallocate() } }
    return copies.map { Optional(UnsafePointer($0)) }.withUnsafeBufferPointer(body)
}
