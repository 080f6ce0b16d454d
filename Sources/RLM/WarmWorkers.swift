import Foundation
import PythonRuntime
import Synchronization

/// The process's pools of warm workers (``Isolation/warmWorkers``), one per distinct worker
/// configuration.
enum WarmWorkers {
    /// What makes two REPLs' workers interchangeable: everything a worker is started with except
    /// its scratch directory and name.
    struct Key: Hashable {
        var readablePaths: [String]
        var nativeModules: [String]
        var maxOutputCharacters: Int
        var memoryLimitBytes: UInt64
        var requiresAllLayers: Bool
        var executable: String?
        /// How long after a cell's deadline the host waits before it kills the worker
        /// (``RLMConfiguration/stopGracePeriod``).
        var killGrace: Duration

        init(_ isolation: Isolation, maxOutputCharacters: Int, stopGracePeriod: Duration) {
            readablePaths = isolation.readablePaths
            nativeModules = isolation.nativeModules
            self.maxOutputCharacters = maxOutputCharacters
            memoryLimitBytes = isolation.memoryLimitBytes
            requiresAllLayers = isolation.requiresAllLayers
            executable = isolation.workerExecutable
            killGrace = stopGracePeriod
        }
    }

    private static let pools = Mutex<[Key: PythonWorkerPool]>([:])

    /// The pool for `isolation`, made (and starting to fill) on first use; `nil` when it keeps no
    /// warm workers.
    static func pool(for isolation: Isolation, maxOutputCharacters: Int, stopGracePeriod: Duration) -> PythonWorkerPool? {
        guard isolation.level == .process, isolation.warmWorkers > 0 else { return nil }
        let key = Key(isolation, maxOutputCharacters: maxOutputCharacters, stopGracePeriod: stopGracePeriod)
        return pools.withLock { pools in
            if let pool = pools[key], pool.configuration.size == isolation.warmWorkers { return pool }
            let pool = PythonWorkerPool(configuration: .init(
                worker: configuration(for: key, scratch: FileManager.default.temporaryDirectory.path), size: isolation.warmWorkers))
            pools[key] = pool
            return pool
        }
    }

    /// How a worker for `key` starts, in `scratch`.
    static func configuration(for key: Key, scratch: String, name: String = "worker") -> PythonWorker.Configuration {
        .init(
            name: name, scratch: scratch, readablePaths: key.readablePaths, nativeModules: key.nativeModules,
            maxOutputCharacters: key.maxOutputCharacters, memoryLimitBytes: key.memoryLimitBytes, killGrace: key.killGrace,
            requireAllLayers: key.requiresAllLayers, executable: key.executable)
    }

    /// Ends every warm worker.
    static func shutDown() async {
        let all = pools.withLock { pools in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
        for pool in all { await pool.shutdown() }
    }
}

extension RLMConfiguration {
    /// Starts filling the pool of warm workers these settings keep (``Isolation/warmWorkers``)
    /// now, instead of at the first run that needs one. Does nothing when they keep none.
    public func startWarmWorkers() {
        _ = WarmWorkers.pool(for: isolation, maxOutputCharacters: maxOutputCharacters, stopGracePeriod: stopGracePeriod)
    }
}

extension Isolation {
    /// Ends the warm workers of every ``warmWorkers`` pool in this process; later runs start new
    /// pools as they need them.
    public static func shutDownWarmWorkers() async {
        await WarmWorkers.shutDown()
    }

}
