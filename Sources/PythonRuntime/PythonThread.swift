import CPython
import CRLMSandbox
import Foundation
import Synchronization

/// A dedicated OS thread that runs Python work, one job at a time, bridged to async/await.
///
/// Python never runs on Swift's cooperative pool: a caller suspends on a continuation while the
/// job runs here. The thread keeps one Python thread state for its whole life and releases the
/// GIL whenever it is idle.
final class PythonThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable (borrowing PythonGIL) -> Void] = []
    private var stopping = false
    private var identifier: UInt = 0
    private let policy: SandboxPolicy?

    /// Starts the thread. The interpreter must have started. With a `policy`, every job (and
    /// every Python thread it starts) runs sandboxed.
    init(name: String, stackSize: Int = 16 << 20, policy: SandboxPolicy? = nil) {
        self.policy = policy
        let thread = Thread { [self] in self.main() }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
        condition.lock()
        while identifier == 0 { condition.wait() }
        condition.unlock()
    }

    /// The thread's id as `PyThread_get_thread_ident()` reports it.
    var pythonThreadID: UInt {
        condition.withLock { identifier }
    }

    private func main() {
        if let policy { _ = rlm_sandbox_enter(policy.pointer) }
        defer { if let mine = rlm_sandbox_enter(nil) { rlm_sandbox_policy_release(mine) } }
        // The id needs no GIL: `init` returns at once even while another thread holds the GIL
        // (a long C call), so a caller is never stuck on a cooperative thread here.
        condition.withLock {
            identifier = UInt(PyThread_get_thread_ident())
            condition.broadcast()
        }
        let state = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
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
        PyEval_RestoreThread(saved)
        PyGILState_Release(state)
    }

    /// Queues a job; returns false once the thread is stopping.
    @discardableResult
    func submit(_ job: @escaping @Sendable (borrowing PythonGIL) -> Void) -> Bool {
        condition.withLock {
            guard !stopping else { return false }
            jobs.append(job)
            condition.signal()
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
