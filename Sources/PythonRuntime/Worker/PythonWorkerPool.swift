import Foundation
import Synchronization

/// Workers started ahead of need: a few confined, idle ``PythonWorker``s kept ready, so that
/// taking one costs a handoff instead of a process start (about 40 ms here).
///
/// Each worker is used once: ``acquire()`` hands it over with the scratch directory it was
/// confined to, and the pool starts a replacement in the background, one at a time. A worker that
/// died while it waited is discarded. When none is ready (at first, or when they are taken faster
/// than they start) `acquire()` starts one itself, exactly as ``PythonWorker/start(configuration:)``.
///
/// ```swift
/// let pool = PythonWorkerPool(configuration: .init(worker: .init(scratch: NSTemporaryDirectory()), size: 2))
/// let (worker, scratch) = try await pool.acquire()
/// // … use the worker; close it and remove `scratch` when done.
/// await pool.shutdown()
/// ```
public final class PythonWorkerPool: Sendable {
    /// How the pool's workers start.
    public struct Configuration: Sendable {
        /// How every worker starts. Its ``PythonWorker/Configuration/scratch`` is the directory
        /// under which each worker gets a private directory of its own (mode 0700).
        public var worker: PythonWorker.Configuration
        /// How many started workers to keep ready. Defaults to 2.
        public var size: Int

        /// Creates a configuration.
        public init(worker: PythonWorker.Configuration, size: Int = 2) {
            self.worker = worker
            self.size = size
        }
    }

    /// What the pool has done so far.
    public struct Statistics: Sendable, Hashable {
        /// Workers handed over ready.
        public var warm = 0
        /// Workers `acquire()` had to start itself.
        public var cold = 0
        /// Ready workers found dead and discarded.
        public var discarded = 0
        /// Workers ready now.
        public var ready = 0
    }

    /// A started worker and the scratch directory it may write.
    public typealias Lease = (worker: PythonWorker, scratch: String)

    /// The configuration.
    public let configuration: Configuration

    private struct State {
        var ready: [Lease] = []
        var filling = false
        var closed = false
        var statistics = Statistics()
    }
    private let state = Mutex(State())

    /// Creates a pool and starts filling it in the background.
    public init(configuration: Configuration) {
        self.configuration = configuration
        refill()
    }

    deinit {
        // Dropping a worker kills it; its directory is removed here.
        for lease in state.withLock({ $0.ready }) { ScratchDirectory.remove(lease.scratch) }
    }

    /// The counts so far.
    public var statistics: Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.ready = state.ready.count
            return statistics
        }
    }

    /// The ready workers (for tests).
    package var readyWorkers: [PythonWorker] { state.withLock { $0.ready.map(\.worker) } }

    /// A started worker, ready or started now, with its scratch directory; the caller owns both.
    public func acquire() async throws -> Lease {
        while true {
            let (lease, closed) = state.withLock { state -> (Lease?, Bool) in
                (state.ready.isEmpty || state.closed ? nil : state.ready.removeFirst(), state.closed)
            }
            guard let lease else {
                if closed { throw PythonError(code: .closed, message: "the worker pool was shut down") }
                let started = try await start()
                state.withLock { $0.statistics.cold += 1 }
                refill()
                return started
            }
            if lease.worker.hasEnded {
                state.withLock { $0.statistics.discarded += 1 }
                ScratchDirectory.remove(lease.scratch)
                continue
            }
            state.withLock { $0.statistics.warm += 1 }
            refill()
            return lease
        }
    }

    /// Ends the ready workers and stops refilling; `acquire()` fails from now on.
    public func shutdown() async {
        let ready = state.withLock { state -> [Lease] in
            state.closed = true
            defer { state.ready.removeAll() }
            return state.ready
        }
        for lease in ready {
            await lease.worker.close()
            ScratchDirectory.remove(lease.scratch)
        }
    }

    /// Starts workers one at a time until `size` are ready, unless a filler already runs.
    private func refill() {
        let begin = state.withLock { state -> Bool in
            guard !state.filling, !state.closed, state.ready.count < configuration.size else { return false }
            state.filling = true
            return true
        }
        guard begin else { return }
        Task.detached(priority: .utility) { [weak self] in
            while let self {
                let lease: Lease
                do {
                    lease = try await self.start()
                } catch {
                    // This machine cannot start one now; acquire() starts (and reports) its own.
                    self.state.withLock { $0.filling = false }
                    return
                }
                let keep = self.state.withLock { state -> Bool in
                    guard !state.closed else { return false }
                    state.ready.append(lease)
                    if state.ready.count >= self.configuration.size { state.filling = false }
                    return true
                }
                if !keep {
                    await lease.worker.close()
                    ScratchDirectory.remove(lease.scratch)
                    self.state.withLock { $0.filling = false }
                    return
                }
                if !self.state.withLock({ $0.filling }) { return }
            }
        }
    }

    /// Starts one worker in a new private directory under the configured scratch directory.
    private func start() async throws -> Lease {
        let directory: String
        switch ScratchDirectory.make(in: configuration.worker.scratch) {
        case .success(let made): directory = made
        case .failure(let failure):
            throw PythonError(code: .initialization, message: "could not create the worker's scratch directory \(failure.path): \(failure.reason)")
        }
        var worker = configuration.worker
        worker.scratch = directory
        do {
            return (try await PythonWorker.start(configuration: worker), directory)
        } catch {
            ScratchDirectory.remove(directory)
            throw error
        }
    }
}
