import CRLMProcess
import Dispatch
import Foundation
import Synchronization

/// The worker process's side of ``PythonWorker``: the `main` of `rlm-worker`, and of any executable
/// that carries the worker itself.
///
/// An executable carries the worker by calling ``hostIfRequested(arguments:)`` first thing in its
/// `main`, before it starts any thread. Started with ``argument`` first, the process becomes a
/// worker and never returns; otherwise the call returns and records that ``PythonWorker`` should
/// start copies of this executable, so the worker always matches its host's build and no
/// `rlm-worker` file is needed beside it. The `rlm` command does this.
///
/// ```swift
/// // main.swift of your tool
/// import PythonRuntime
/// WorkerProcess.hostIfRequested()
/// // … the rest of main: PythonWorker now starts this executable as its worker.
/// ```
///
/// A worker started this way (or as `rlm-worker`) gets its channel as descriptor 3 and an empty
/// environment. It dies with its parent, moves into new user, network, mount and PID namespaces
/// (forking once: the REPL is the first process of its PID namespace, with a /proc of its own),
/// limits its memory, open files and file sizes, then sets no_new_privs, drops capabilities,
/// restricts the file system with Landlock (read-only: the interpreter's and the libraries'
/// directories and what the host granted; read-write: the scratch directory) and installs a
/// seccomp filter (no execve, no new processes, no ptrace, no sockets, no signals to other
/// processes). Only then does the interpreter start, with the in-process sandbox on top.
public enum WorkerProcess {
    /// The first argument that makes a hosting executable a worker.
    public static let argument = "--rlm-worker"

    private static let hosting = Atomic<Bool>(false)

    /// Whether this process called ``hostIfRequested(arguments:)`` and so starts copies of itself
    /// as workers.
    public static var hostsWorkers: Bool { hosting.load(ordering: .acquiring) }

    /// Becomes a worker when this process was started as one (never returning); otherwise records
    /// that this executable can be started as a worker. Call it first in `main`, before any thread
    /// starts: a worker forks while it confines itself.
    public static func hostIfRequested(arguments: [String] = CommandLine.arguments) {
        if arguments.count > 1 && arguments[1] == argument {
            run(arguments: arguments.dropFirst(2))
        }
        hosting.store(true, ordering: .releasing)
    }

    /// The worker's `main`: confines this process, starts the interpreter and serves the host on
    /// descriptor 3 until the host closes it. `arguments` are the flags ``PythonWorker`` passes.
    public static func run(arguments: ArraySlice<String>) -> Never {
        // The only variable the host sets, read by the Swift runtime at start; the REPL sees none.
        unsetenv("SWIFT_BACKTRACE")
        guard let options = Options.parse(arguments) else {
            FileHandle.standardError.write(Data("rlm-worker: started by swift-rlm's PythonWorker, not by hand\n".utf8))
            exit(64)
        }
        var layers = rlm_confine_early(options.parent, options.limits)
        let systemPaths = ["/usr/lib", "/lib", "/lib64", "/usr/lib64", "/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo",
                           "/dev/urandom", "/dev/random", "/dev/zero", "/sys/devices/system/cpu"]
        // libdispatch's thread-pool monitor reads /proc/<tid>/stat of its threads and stops the
        // process if it cannot. /proc is the PID namespace's own (only the REPL's threads), never the host's.
        let procPaths = layers & UInt32(RLM_LAYER_PID_NAMESPACE) != 0 ? ["/proc"] : []
        let readable = options.read + systemPaths + procPaths + mappedDirectories()
        var landlockABI: Int32 = 0
        layers |= withCStrings(readable) { read in
            withCStrings(options.write) { write in
                rlm_confine(read.baseAddress, read.count, write.baseAddress, write.count, &landlockABI)
            }
        }
        let channel = WorkerChannel(descriptor: 3)
        let configuration = PythonNamespace.Configuration(
            name: options.name, maxOutputCharacters: options.maxOutput, stopGracePeriod: .milliseconds(options.graceMilliseconds),
            sandbox: options.inProcessSandbox
                ? PythonSandbox(readablePaths: options.read, writablePaths: options.write, nativeModules: options.native) : nil)
        let confinedLayers = layers
        Task {
            await WorkerServer.run(channel: channel, configuration: configuration, layers: confinedLayers, landlockABI: Int(landlockABI))
        }
        dispatchMain()
    }

    /// The flags ``PythonWorker/start(configuration:)`` passes.
    struct Options {
        var parent: pid_t = 0
        var name = "worker"
        var maxOutput: Int?
        var graceMilliseconds = 5_000
        var limits = rlm_limits(address_space_bytes: 0, open_files: 256, file_size_bytes: 1 << 30)
        var read: [String] = []
        var write: [String] = []
        var native: [String] = []
        var inProcessSandbox = true

        static func parse(_ arguments: ArraySlice<String>) -> Options? {
            var options = Options()
            var iterator = arguments.makeIterator()
            while let flag = iterator.next() {
                guard let value = iterator.next() else { return nil }
                switch flag {
                case "--parent": options.parent = pid_t(value) ?? 0
                case "--name": options.name = value
                case "--max-output": options.maxOutput = Int(value)
                case "--grace-ms": options.graceMilliseconds = Int(value) ?? 5_000
                case "--memory": options.limits.address_space_bytes = UInt64(value) ?? 0
                case "--read": options.read.append(value)
                case "--write": options.write.append(value)
                case "--native": options.native.append(value)
                case "--in-process-sandbox": options.inProcessSandbox = value != "off"
                default: return nil
                }
            }
            return options.parent > 0 ? options : nil
        }
    }

    /// Directories of every file mapped into this process (the Swift runtime, libpython, libc):
    /// what the dynamic loader may need to read later.
    static func mappedDirectories() -> [String] {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return [] }
        var directories = Set<String>()
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            directories.insert((path as NSString).deletingLastPathComponent)
        }
        return directories.sorted()
    }
}
