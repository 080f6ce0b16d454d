/// How model-written code is confined. Set it with ``RLMConfiguration/isolation``; see
/// docs/security.md for exactly what each level stops and what it does not.
///
/// ```swift
/// var configuration = RLMConfiguration(rootModel: model)
/// configuration.isolation = .inProcess                       // the default
/// configuration.isolation.readablePaths = ["/srv/reference"]  // widen what code may read
/// ```
public struct Isolation: Sendable, Hashable {
    /// How strongly code is confined.
    public struct Level: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case inProcess = "in-process"
            case process
            case unrestricted
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The REPL runs in the host process under the bridge's sandbox (a C audit hook and
        /// guards): no processes, sockets, `ctypes` or unlisted native modules, writes only under
        /// a scratch directory of its own, reads only of the standard library and
        /// ``Isolation/readablePaths``, no walking of other REPLs' objects, a scrubbed
        /// `os.environ`. Defence in depth against code a prompt injection wrote, not a boundary
        /// against a determined attacker.
        public static let inProcess = Level(.inProcess)
        /// Each RLM node's REPL runs in a worker process (`rlm-worker`, a product of this
        /// package, or the host executable itself when it carries the worker, as `rlm` does) that confines itself with the kernel before any Python runs: an empty
        /// environment, new user, network, mount and PID namespaces, no_new_privs, Landlock (read-only
        /// access to what Python needs and ``Isolation/readablePaths``, write access only to its
        /// scratch directory), seccomp (no sockets, execve, new processes, ptrace or signals to
        /// other processes) and resource limits, with the in-process sandbox on top. Model calls,
        /// budgets and credentials stay in the host. A cell that does not stop 100 ms after its
        /// deadline, or that crashes the worker, is reported to the model and the run goes on in
        /// a fresh worker. Needs Linux.
        public static let process = Level(.process)
        /// The REPL has the host's full authority. Only for code you trust.
        public static let unrestricted = Level(.unrestricted)

        public var description: String { base.rawValue }
    }

    /// How strongly code is confined. Defaults to ``Level/inProcess``.
    public var level: Level
    /// Files and directories code may read besides the standard library and its scratch
    /// directory. Defaults to none.
    public var readablePaths: [String]
    /// Native extension modules code may import besides the standard library's, by name
    /// (`"numpy"` allows its submodules). Defaults to none.
    public var nativeModules: [String]
    /// Whether code may open network sockets. Defaults to `false`. Not available with
    /// ``Level/process``, whose workers have no network at all.
    public var allowsNetwork: Bool
    /// The most memory (address space) a worker may use, in bytes, for ``Level/process``.
    /// Defaults to 4 GiB.
    public var memoryLimitBytes: UInt64 = 4 << 30
    /// Refuse to run, for ``Level/process``, when the kernel lacks a confinement layer (user
    /// namespaces, Landlock ABI 6, seccomp) instead of running with the layers it has. Defaults
    /// to `false`.
    public var requiresAllLayers = false
    /// The `rlm-worker` executable for ``Level/process``. Defaults to `nil`: this executable
    /// when it carries the worker (it called `WorkerProcess.hostIfRequested()`, as `rlm` does),
    /// otherwise `rlm-worker` next to it.
    public var workerExecutable: String?
    /// How many confined workers to keep started and idle for ``Level/process``, so that a new
    /// REPL (a run, an `rlm_query` child) takes one in a handoff instead of waiting for a process
    /// to start. Defaults to 0: each REPL starts its own. Workers are shared by every run of this
    /// process whose isolation settings match, each used once and replaced in the background;
    /// they live until the process ends or ``shutDownWarmWorkers()``.
    public var warmWorkers = 0

    /// Creates an isolation setting.
    public init(level: Level = .inProcess, readablePaths: [String] = [], nativeModules: [String] = [], allowsNetwork: Bool = false) {
        self.level = level
        self.readablePaths = readablePaths
        self.nativeModules = nativeModules
        self.allowsNetwork = allowsNetwork
    }

    /// The default: ``Level/inProcess`` with nothing widened.
    public static let inProcess = Isolation(level: .inProcess)
    /// ``Level/process`` with nothing widened.
    public static let process = Isolation(level: .process)
    /// Code runs with the host's full authority. Only for code you trust.
    public static let unrestricted = Isolation(level: .unrestricted)
}
