import CPython
import CRLMSandbox
import Foundation

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
        let state = PyGILState_Ensure()
        condition.withLock {
            identifier = UInt(PyThread_get_thread_ident())
            condition.broadcast()
        }
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

    /// Runs `body` on the thread with the GIL held and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable (borrowing PythonGIL) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = submit { gil in
                do {
                    continuation.resume(returning: try body(gil))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            if !accepted {
                continuation.resume(throwing: PythonError(code: .closed, message: "the Python namespace was closed"))
            }
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
