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
    /// Whether code may open network sockets. Defaults to `false`.
    public var allowsNetwork: Bool

    /// Creates an isolation setting.
    public init(level: Level = .inProcess, readablePaths: [String] = [], nativeModules: [String] = [], allowsNetwork: Bool = false) {
        self.level = level
        self.readablePaths = readablePaths
        self.nativeModules = nativeModules
        self.allowsNetwork = allowsNetwork
    }

    /// The default: ``Level/inProcess`` with nothing widened.
    public static let inProcess = Isolation(level: .inProcess)
    /// Code runs with the host's full authority. Only for code you trust.
    public static let unrestricted = Isolation(level: .unrestricted)
}
