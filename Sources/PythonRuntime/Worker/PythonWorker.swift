import CRLMProcess
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
private func posixClose(_ fd: Int32) { _ = Glibc.close(fd) }
@discardableResult private func posixKill(_ pid: pid_t, _ signal: Int32) -> Int32 { Glibc.kill(pid, signal) }
#elseif canImport(Darwin)
import Darwin
private func posixClose(_ fd: Int32) { _ = Darwin.close(fd) }
@discardableResult private func posixKill(_ pid: pid_t, _ signal: Int32) -> Int32 { Darwin.kill(pid, signal) }
#endif

/// A REPL in a worker process of its own (`rlm-worker`), confined by the kernel before it runs
/// any Python: user and network namespaces, no_new_privs, Landlock, seccomp and resource limits,
/// with the in-process sandbox on top.
///
/// The worker holds no secrets (it starts with an empty environment) and reaches the host only
/// through its channel: native functions installed with ``install(_:)`` run here, in the host,
/// when the worker's code calls them. The host enforces deadlines: a cell that has not returned
/// ``Configuration/killGrace`` after its deadline is ended by killing the worker, and a worker
/// that crashes (a segfault, `os._exit`, the memory limit) ends its cell the same way; both
/// return ``ExecutionResult/Status/abandoned`` and leave the worker closed. Start a new one to go on.
///
/// ```swift
/// let worker = try await PythonWorker.start(configuration: .init(scratch: scratchPath))
/// let result = try await worker.execute("print(sum(range(10)))", timeout: .seconds(5))
/// await worker.close()
/// ```
public final class PythonWorker: PythonREPL {
    /// How a worker is started.
    public struct Configuration: Sendable {
        /// A name for the worker's namespace. Defaults to `"worker"`.
        public var name: String
        /// The directory the worker may write (its scratch directory).
        public var scratch: String
        /// Paths the worker may read besides the interpreter's own. Defaults to none.
        public var readablePaths: [String]
        /// Native extension modules the worker may import besides the standard library's.
        public var nativeModules: [String]
        /// The most characters of stdout (and of stderr) kept per cell. Defaults to `nil`: all.
        public var maxOutputCharacters: Int?
        /// The worker's address-space limit in bytes. Defaults to 4 GiB.
        public var memoryLimitBytes: UInt64
        /// How long after a cell's deadline the host waits for it to return before it kills the
        /// worker. Defaults to 5 s, as ``PythonNamespace/Configuration/stopGracePeriod``: the
        /// worker stops code it can stop at the deadline itself, but on a loaded host its stop
        /// and reply wait for a core (a stopped loop took 150 ms past its deadline beside 12
        /// busy workers), and a kill costs the REPL every variable. Code stuck in C is killed
        /// this long after its deadline.
        public var killGrace: Duration
        /// How long the worker may take to start. Defaults to 10 s.
        public var startTimeout: Duration
        /// Fail to start when the kernel lacks a confinement layer (see ``PythonWorker/missingLayers``)
        /// instead of starting with the layers it has. Defaults to `false`.
        public var requireAllLayers: Bool
        /// The worker executable. Defaults to `nil`: ``PythonWorker/defaultExecutable``.
        public var executable: String?
        /// Also run the in-process sandbox (the audit hook and guards) inside the worker.
        /// Defaults to `true`. Turning it off leaves the kernel's confinement alone, which is
        /// what tests of that layer do.
        public var inProcessSandbox: Bool = true

        /// Creates a configuration with the defaults above.
        public init(
            name: String = "worker", scratch: String, readablePaths: [String] = [], nativeModules: [String] = [],
            maxOutputCharacters: Int? = nil, memoryLimitBytes: UInt64 = 4 << 30, killGrace: Duration = .seconds(5),
            startTimeout: Duration = .seconds(10), requireAllLayers: Bool = false, executable: String? = nil
        ) {
            self.name = name
            self.scratch = scratch
            self.readablePaths = readablePaths
            self.nativeModules = nativeModules
            self.maxOutputCharacters = maxOutputCharacters
            self.memoryLimitBytes = memoryLimitBytes
            self.killGrace = killGrace
            self.startTimeout = startTimeout
            self.requireAllLayers = requireAllLayers
            self.executable = executable
        }
    }

    /// The worker's process id.
    public let processID: pid_t
    /// The confinement layers the kernel could not provide, by name; empty on a kernel with
    /// user namespaces, Landlock (ABI 6 or later) and seccomp.
    public let missingLayers: [String]

    private let configuration: Configuration
    private let channel: WorkerChannel
    private let state = Mutex(State())
    private let nextID = Atomic<Int>(0)

    private struct State {
        var pending: [Int: CheckedContinuation<WorkerMessage.Reply, any Error>] = [:]
        var functions: [String: NativeFunction] = [:]
        var calls: [Int: Task<Void, Never>] = [:]
        /// Calls that finished before their task was recorded (they ran at once).
        var finishedCalls: Set<Int> = []
        /// Why the worker is gone, once it is.
        var ended: String?
        /// Set before the host kills the worker on purpose, to report why.
        var killReason: String?
    }

    /// The `typeName` of the error in an ``ExecutionResult/Status/abandoned`` result whose worker
    /// ended (crashed or was killed); its message says why.
    public static let endedTypeName = "WorkerEnded"

    /// The worker ended: it crashed, was killed at a deadline, or was closed.
    struct Ended: Error {
        var reason: String
    }

    private let process: ChildProcess

    private init(process: ChildProcess, channel: WorkerChannel, missingLayers: [String], configuration: Configuration) {
        self.process = process
        self.processID = process.pid
        self.channel = channel
        self.missingLayers = missingLayers
        self.configuration = configuration
    }

    deinit {
        // The reading thread owns the descriptor (the channel closes it when both are done with
        // it): closing it here could hand its number to a new worker's channel while that thread
        // still reads from it. Killing the process ends the thread's read instead.
        process.kill()
    }

    /// The layer names, in the order they are applied.
    static let layerNames: [(UInt32, String)] = [
        (UInt32(RLM_LAYER_USER_NAMESPACE), "user namespace"), (UInt32(RLM_LAYER_NETWORK_NAMESPACE), "network namespace"),
        (UInt32(RLM_LAYER_PID_NAMESPACE), "PID namespace"),
        (UInt32(RLM_LAYER_NO_NEW_PRIVS), "no_new_privs"), (UInt32(RLM_LAYER_LANDLOCK), "Landlock"),
        (UInt32(RLM_LAYER_LANDLOCK_NETWORK), "Landlock network rules (ABI 4)"),
        (UInt32(RLM_LAYER_LANDLOCK_SCOPE), "Landlock signal and socket scoping (ABI 6)"),
        (UInt32(RLM_LAYER_SECCOMP), "seccomp"), (UInt32(RLM_LAYER_RESOURCE_LIMITS), "resource limits"),
    ]

    /// The default worker: this executable itself when it hosts workers (see
    /// ``WorkerProcess/hostIfRequested(arguments:)``), otherwise `rlm-worker` next to it.
    public static var defaultExecutable: String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if WorkerProcess.hostsWorkers { return me }
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("rlm-worker").path
    }

    /// Starts a worker and waits until it is confined and its interpreter runs.
    public static func start(configuration: Configuration) async throws -> PythonWorker {
        try Interpreter.ensureStarted()
        let executable = configuration.executable ?? defaultExecutable
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw PythonError(code: .initialization, message: "the worker executable \(executable) does not exist: build the rlm-worker product (swift build), call WorkerProcess.hostIfRequested() first in your main, or set its path")
        }
        // A hosting executable is told to be the worker; `rlm-worker` (or a configured one) is one.
        let hosted = configuration.executable == nil && WorkerProcess.hostsWorkers
        var pair: (Int32, Int32) = (-1, -1)
        let pairError = withUnsafeMutablePointer(to: &pair) { pointer in
            pointer.withMemoryRebound(to: Int32.self, capacity: 2) { rlm_socket_pair($0) }
        }
        let (hostEnd, workerEnd) = pair
        guard pairError == 0 else {
            throw PythonError(code: .initialization, message: "could not create the worker channel: \(String(cString: strerror(pairError)))")
        }
        var arguments = [executable] + (hosted ? [WorkerProcess.argument] : []) + ["--parent", String(getpid()), "--name", configuration.name,
                         "--memory", String(configuration.memoryLimitBytes), "--write", configuration.scratch]
        if let limit = configuration.maxOutputCharacters { arguments += ["--max-output", String(limit)] }
        for path in Interpreter.standardPaths.readable + configuration.readablePaths { arguments += ["--read", path] }
        for module in configuration.nativeModules { arguments += ["--native", module] }
        if !configuration.inProcessSandbox { arguments += ["--in-process-sandbox", "off"] }
        let pid: pid_t
        do {
            pid = try await WorkerSpawner.spawn(executable, arguments: arguments, channel: workerEnd)
        } catch {
            posixClose(workerEnd)
            posixClose(hostEnd)
            throw error
        }
        posixClose(workerEnd)
        let channel = WorkerChannel(descriptor: hostEnd)
        /// Ends a worker that will not be used; the channel closes its descriptor when released.
        /// The process is reaped only here, so until then its id cannot belong to another one.
        let process = ChildProcess(pid: pid)
        func discard(_ message: String, withStatus: Bool = false) -> PythonError {
            process.kill()
            let status = process.reap()
            return PythonError(code: .initialization, message: withStatus ? "\(message) (\(Self.describe(status: status)))" : message)
        }
        let ready: WorkerMessage
        do {
            ready = try await Self.awaitReady(channel, timeout: configuration.startTimeout)
        } catch let error as StartFailure {
            throw discard(error.message, withStatus: error.exited)
        } catch {
            throw discard("the worker did not start: \(error)")
        }
        guard case .ready(let layers, _, let error) = ready else {
            throw discard("the worker did not start")
        }
        let missing = Self.layerNames.filter { layers & $0.0 == 0 }.map(\.1)
        if let error {
            throw discard("the worker's interpreter did not start: \(error)")
        }
        if configuration.requireAllLayers && !missing.isEmpty {
            throw discard("this kernel lacks confinement layers the configuration requires: \(missing.joined(separator: ", "))")
        }
        let worker = PythonWorker(process: process, channel: channel, missingLayers: missing, configuration: configuration)
        // The reading thread holds the worker weakly, so that dropping the last reference kills
        // the process (deinit); the thread then reaps it either way.
        let thread = Thread { [weak worker] in
            channel.receiveAll { message, fd in worker?.receive(message, fd: fd) }
            let status = process.reap()
            worker?.ended(status: status)
        }
        thread.name = "rlm.worker.\(configuration.name)"
        thread.start()
        return worker
    }

    /// Why a worker did not say it was ready.
    private struct StartFailure: Error {
        var message: String
        var exited: Bool
    }

    /// Reads the worker's first message on a thread of its own, within `timeout`.
    private static func awaitReady(_ channel: WorkerChannel, timeout: Duration) async throws -> WorkerMessage {
        let outcome = Mutex<Result<WorkerMessage, any Error>?>(nil)
        return try await withCheckedThrowingContinuation { continuation in
            let resume = { @Sendable (result: Result<WorkerMessage, any Error>) in
                let first = outcome.withLock { current -> Bool in
                    guard current == nil else { return false }
                    current = result
                    return true
                }
                if first { continuation.resume(with: result) }
            }
            let reader = Thread {
                do {
                    guard let (message, _) = try channel.receive() else {
                        resume(.failure(StartFailure(message: "the worker exited during start-up", exited: true)))
                        return
                    }
                    resume(.success(message))
                } catch {
                    resume(.failure(error))
                }
            }
            reader.start()
            let (seconds, attoseconds) = timeout.components
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))) {
                resume(.failure(StartFailure(message: "the worker did not start within \(timeout)", exited: false)))
            }
        }
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit status \((status >> 8) & 0xff)" }
        let names: [Int32: String] = [SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGSYS: "SIGSYS", SIGILL: "SIGILL"]
        return "killed by \(names[signal] ?? "signal \(signal)")"
    }

    // MARK: - Receiving

    private func receive(_ message: WorkerMessage, fd: Int32?) {
        if let fd { posixClose(fd) }
        switch message {
        case .reply(let id, let reply):
            state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: reply)
        case .call(let callID, let name, let arguments):
            startCall(callID, name: name, arguments: arguments)
        default:
            break
        }
    }

    /// The process is gone (reaped, with `status`): every pending request fails with the reason.
    private func ended(status: Int32) {
        let (pending, calls) = state.withLock { state -> ([CheckedContinuation<WorkerMessage.Reply, any Error>], [Task<Void, Never>]) in
            state.ended = state.killReason ?? "the REPL process ended (\(Self.describe(status: status)))"
            defer {
                state.pending.removeAll()
                state.calls.removeAll()
            }
            return (Array(state.pending.values), Array(state.calls.values))
        }
        let reason = state.withLock { $0.ended } ?? ""
        for task in calls { task.cancel() }
        for continuation in pending { continuation.resume(throwing: Ended(reason: reason)) }
    }

    private func startCall(_ callID: Int, name: String, arguments: PythonArguments) {
        let function = state.withLock { $0.functions[name] }
        let channel = self.channel
        // Runs on this reading thread until the body first suspends: a function that answers at
        // once costs no hop to another thread, one that waits (a model call) frees the thread.
        let task = Task.immediate {
            var value: PythonValue?
            var failure: PythonError?
            do {
                guard let function else { throw PythonError(code: .exception, typeName: "NameError", message: "no host function \(name)") }
                switch function.body {
                case .synchronous(let body): value = try body(arguments)
                case .asynchronous(let body): value = try await body(arguments)
                }
            } catch {
                failure = PythonError(bridging: error)
            }
            self.state.withLock { state in
                if state.calls.removeValue(forKey: callID) == nil { state.finishedCalls.insert(callID) }
            }
            try? channel.send(.callResult(callID: callID, value: value, error: failure))
        }
        state.withLock { state in
            if state.finishedCalls.remove(callID) == nil { state.calls[callID] = task }
        }
    }

    // MARK: - Requests

    private func request(_ make: (Int) -> WorkerMessage, passing fd: Int32 = -1, onCancel: (@Sendable (Int) -> Void)? = nil) async throws -> WorkerMessage.Reply {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let message = make(id)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ended = state.withLock { state -> String? in
                    if let ended = state.ended { return ended }
                    state.pending[id] = continuation
                    return nil
                }
                if let ended {
                    continuation.resume(throwing: Ended(reason: ended))
                    return
                }
                do {
                    try channel.send(message, passing: fd)
                } catch {
                    state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: error)
                }
            }
        } onCancel: {
            onCancel?(id)
        }
    }

    private func expectOK(_ reply: WorkerMessage.Reply) throws {
        if case .failure(let error) = reply { throw error }
    }

    private func expectValue(_ reply: WorkerMessage.Reply) throws -> PythonValue {
        switch reply {
        case .value(let value): return value
        case .failure(let error): throw error
        default: throw PythonError(code: .exception, message: "the worker sent an unexpected reply")
        }
    }

    private func closedError(_ error: any Error) -> any Error {
        guard let ended = error as? Ended else { return error }
        return PythonError(code: .closed, message: ended.reason)
    }

    public func install(_ function: NativeFunction) async throws {
        state.withLock { $0.functions[function.name] = function }
        do {
            try expectOK(try await request { .install(id: $0, name: function.name, documentation: function.documentation) })
        } catch { throw closedError(error) }
    }

    public func set(_ name: String, to value: PythonValue) async throws {
        // Large text goes through a sealed memory file: one copy, no encoding.
        if case .string(let text) = value, text.utf8.count > 65_536 {
            var text = text
            let fd = text.withUTF8 { rlm_memory_file($0.baseAddress, $0.count) }
            guard fd >= 0 else { throw PythonError(code: .conversion, message: "could not create a memory file: \(String(cString: strerror(-fd)))") }
            defer { posixClose(fd) }
            do {
                try expectOK(try await request({ .setString(id: $0, name: name, length: text.utf8.count) }, passing: fd))
            } catch { throw closedError(error) }
            return
        }
        do {
            try expectOK(try await request { .set(id: $0, name: name, value: value) })
        } catch { throw closedError(error) }
    }

    public func setString(_ name: String, contentsOfFile path: String) async throws {
        let fd = try PythonError.openForReading(path)
        defer { posixClose(fd) }
        do {
            try expectOK(try await request({ .setString(id: $0, name: name, length: -1) }, passing: fd))
        } catch { throw closedError(error) }
    }

    /// Binds `name` to a read-only mapping of the file: the worker maps the descriptor the host
    /// opened, so the file need not be readable inside the worker's confinement.
    public func setMapping(_ name: String, contentsOfFile path: String) async throws {
        let fd = try PythonError.openForReading(path)
        defer { posixClose(fd) }
        do {
            try expectOK(try await request({ .setMapping(id: $0, name: name) }, passing: fd))
        } catch { throw closedError(error) }
    }

    public func evaluate(_ expression: String) async throws -> PythonValue {
        do {
            return try expectValue(try await request { .evaluate(id: $0, expression: expression, private: false) })
        } catch { throw closedError(error) }
    }

    public func executePrivately(_ code: String) async throws {
        do {
            try expectOK(try await request { .executePrivately(id: $0, code: code) })
        } catch { throw closedError(error) }
    }

    public func evaluatePrivately(_ expression: String) async throws -> PythonValue {
        do {
            return try expectValue(try await request { .evaluate(id: $0, expression: expression, private: true) })
        } catch { throw closedError(error) }
    }

    public func execute(_ code: String, timeout: Duration?) async throws -> ExecutionResult {
        if let ended = state.withLock({ $0.ended }) { throw PythonError(code: .closed, message: ended) }
        let clock = ContinuousClock()
        let start = clock.now
        let nanoseconds = timeout.map { Int($0.components.seconds) * 1_000_000_000 + Int($0.components.attoseconds / 1_000_000_000) } ?? 0
        let killer = Task { [weak self, killGrace = configuration.killGrace] in
            guard let timeout else { return }
            try? await Task.sleep(for: timeout + killGrace)
            guard !Task.isCancelled else { return }
            self?.terminate(because: "the cell did not stop within \(killGrace) of its \(timeout) limit, so its REPL process was killed")
        }
        defer { killer.cancel() }
        do {
            let reply = try await request({ .execute(id: $0, code: code, timeoutNanoseconds: nanoseconds) }, onCancel: { [weak self] id in
                guard let self else { return }
                try? self.channel.send(.stop(id: id))
                let grace = self.configuration.killGrace
                Task { [weak self] in
                    try? await Task.sleep(for: grace)
                    self?.terminate(because: "the cell did not stop within \(grace) of being cancelled, so its REPL process was killed", ifPending: id)
                }
            })
            switch reply {
            case .result(let result): return result
            case .failure(let error) where error.code == .interrupted: throw CancellationError()
            case .failure(let error): throw error
            default: throw PythonError(code: .exception, message: "the worker sent an unexpected reply")
            }
        } catch let ended as Ended {
            if Task.isCancelled { throw CancellationError() }
            return ExecutionResult(
                status: .abandoned,
                error: PythonError(code: .abandoned, typeName: Self.endedTypeName, message: ended.reason),
                duration: clock.now - start)
        }
    }

    /// Kills the worker, recording why (the reason pending requests get).
    private func terminate(because reason: String, ifPending id: Int? = nil) {
        let proceed = state.withLock { state -> Bool in
            guard state.ended == nil else { return false }
            if let id, state.pending[id] == nil { return false }
            if state.killReason == nil { state.killReason = reason }
            return true
        }
        if proceed { process.kill() }
    }

    /// Whether the worker has ended (crashed, killed, or closed).
    public var hasEnded: Bool { state.withLock { $0.ended != nil } }

    /// Ends the worker: its process is killed and reaped.
    public func close() async {
        terminate(because: "the REPL process was closed")
    }
}

/// A child process that is signalled only while it has not been reaped, so a signal never
/// reaches another process that was given its id afterwards.
final class ChildProcess: Sendable {
    let pid: pid_t
    private let reaped = Mutex(false)

    init(pid: pid_t) {
        self.pid = pid
    }

    /// SIGKILL, unless the process was already reaped.
    func kill() {
        reaped.withLock { reaped in
            if !reaped { posixKill(pid, SIGKILL) }
        }
    }

    /// Waits for the process to end (without holding the lock), then reaps it and returns its
    /// wait status. Call once.
    func reap() -> Int32 {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        return reaped.withLock { reaped in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            reaped = true
            return status
        }
    }
}
