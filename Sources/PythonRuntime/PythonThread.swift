import CPython
import CRLMSandbox
import Foundation
import Synchronization

/// A dedicated OS thread that runs Python work, one job at a time, bridged to async/await.
///
/// Python never runs on Swift's cooperative pool: a caller suspends on a continuation while the
/// job runs here. The thread holds a Python thread state while it lives and releases the GIL
/// whenever it is idle. After `idleTimeout` without work it ends, and the next job starts a
/// fresh one: an idle namespace (a session between turns) holds no OS thread.
final class PythonThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable (borrowing PythonGIL) -> Void] = []
    private var stopping = false
    /// Whether an OS thread is serving the jobs now.
    private var running = false
    private let name: String
    private let stackSize: Int
    private let idleTimeout: Duration?
    private let policy: SandboxPolicy?

    /// OS threads that are serving a namespace now, across the process (for benchmarks and tests).
    static var liveThreads: Int { live.withLock { $0 } }
    private static let live = Mutex(0)

    /// Prepares the thread; the OS thread starts with the first job. The interpreter must have
    /// started. With a `policy`, every job (and every Python thread it starts) runs sandboxed.
    /// `idleTimeout` `nil` keeps the thread until ``stop()``.
    init(name: String, stackSize: Int = 16 << 20, idleTimeout: Duration? = nil, policy: SandboxPolicy? = nil) {
        self.name = name
        self.stackSize = stackSize
        self.idleTimeout = idleTimeout
        self.policy = policy
    }

    /// Starts an OS thread to serve the queue. Called with the lock held.
    private func launch() {
        running = true
        Self.live.withLock { $0 += 1 }
        let thread = Thread { [self] in self.main() }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    private func main() {
        if let policy { _ = rlm_sandbox_enter(policy.pointer) }
        defer {
            if let mine = rlm_sandbox_enter(nil) { rlm_sandbox_policy_release(mine) }
            Self.live.withLock { $0 -= 1 }
        }
        let state = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        while true {
            condition.lock()
            var expired = false
            while jobs.isEmpty && !stopping && !expired {
                if let idleTimeout {
                    expired = !condition.wait(until: Date(timeIntervalSinceNow: Double(idleTimeout.components.seconds)
                        + Double(idleTimeout.components.attoseconds) * 1e-18))
                } else {
                    condition.wait()
                }
            }
            if jobs.isEmpty {
                // Stopping, or idle past the timeout: the next job starts another thread.
                running = false
                condition.unlock()
                break
            }
            let job = jobs.removeFirst()
            condition.unlock()
            PyEval_RestoreThread(saved)
            ReferencePool.drain()
            job(PythonGIL())
            saved = PyEval_SaveThread()
        }
        // Taking the GIL back to release the thread state can wait behind code that holds it;
        // this thread has no more work, so that waits off every caller's path.
        PyEval_RestoreThread(saved)
        PyGILState_Release(state)
    }

    /// Whether an OS thread is serving the queue now.
    var isRunning: Bool { condition.withLock { running } }

    /// Queues a job, starting a thread if none is serving; returns false once the thread is stopping.
    @discardableResult
    func submit(_ job: @escaping @Sendable (borrowing PythonGIL) -> Void) -> Bool {
        condition.withLock {
            guard !stopping else { return false }
            jobs.append(job)
            if running {
                condition.signal()
            } else {
                launch()
            }
            return true
        }
    }

    /// How long a cancelled caller waits for its job to start before giving up on it.
    static let cancelledJobGrace: Duration = .seconds(5)

    /// Runs `body` on the thread with the GIL held and returns its result.
    ///
    /// A cancelled caller whose job has not started within ``cancelledJobGrace`` (the GIL is held
    /// by code that cannot be stopped) gets `CancellationError` and the job is skipped. Jobs that
    /// start promptly run even for a cancelled caller, so clean-up after a cancellation works.
    func run<T: Sendable>(_ body: @escaping @Sendable (borrowing PythonGIL) throws -> T) async throws -> T {
        let job = PendingJob<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                job.attach(continuation)
                let accepted = submit { gil in
                    guard job.start() else { return }
                    job.finish(Result { try body(gil) })
                }
                if !accepted {
                    job.finish(.failure(PythonError(code: .closed, message: "the Python namespace was closed")))
                }
                if Task.isCancelled { job.giveUpLater() }
            }
        } onCancel: {
            job.giveUpLater()
        }
    }

    /// Lets queued jobs finish, then ends the thread.
    func stop() {
        condition.withLock {
            stopping = true
            condition.signal()
        }
    }
}

/// One `PythonThread.run` call: resumed exactly once, by its job or by giving up on it.
private final class PendingJob<T: Sendable>: Sendable {
    private enum State {
        case waiting(CheckedContinuation<T, any Error>?)
        case running(CheckedContinuation<T, any Error>)
        case done
    }

    private let state = Mutex(State.waiting(nil))

    func attach(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { if case .waiting = $0 { $0 = .waiting(continuation) } }
    }

    /// Called by the job; false if the caller gave up.
    func start() -> Bool {
        state.withLock {
            guard case .waiting(let continuation) = $0, let continuation else { return false }
            $0 = .running(continuation)
            return true
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .waiting(let continuation):
                state = .done
                return continuation
            case .running(let continuation):
                state = .done
                return continuation
            case .done:
                return nil
            }
        }
        continuation?.resume(with: result)
    }

    /// After the grace period, resumes the caller with `CancellationError` if the job has not started.
    func giveUpLater() {
        let nanoseconds = UInt64(PythonThread.cancelledJobGrace.components.seconds) * 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
            let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
                guard case .waiting(let continuation) = state, let continuation else { return nil }
                state = .done
                return continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }
}
