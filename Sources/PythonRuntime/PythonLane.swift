import CPython
import CRLMSandbox
import Foundation
import Synchronization

/// The Python work of one namespace: jobs that run one at a time, in order, on a thread of the
/// ``PythonThreadPool``, bridged to async/await.
///
/// Python never runs on Swift's cooperative pool: a caller suspends on a continuation while the
/// job runs on a pool thread. Each job runs under the lane's sandbox policy (if any) and in the
/// lane's own `contextvars` context, so context variables (`decimal`'s context among them) set by
/// one namespace's code are never seen by another namespace that runs on the same thread later.
final class PythonLane: @unchecked Sendable {
    /// One job: its body, and how to fail its caller if it never runs (the lane was abandoned
    /// while the job waited behind one stuck for good).
    struct Job: Sendable {
        let run: @Sendable (borrowing PythonGIL) -> Void
        let fail: @Sendable (any Error) -> Void
    }

    private let lock = NSLock()
    private var jobs: [Job] = []
    private var head = 0
    private var scheduled = false
    private var stopping = false
    /// The sandbox policy every job runs under, if any.
    let policy: SandboxPolicy?
    /// The pool's level for the lane's jobs (``PythonNamespace/Configuration/level``).
    let level: Int
    /// Whether a job of the lane holds a pool thread counted against its level; guarded by the
    /// pool's lock.
    var holdsThread = false
    /// The lane's `contextvars.Context`, made by its first job; touched only by the running job.
    private var context: UnsafeMutablePointer<PyObject>?

    /// Creates a lane. The interpreter must have started. With a `policy`, every job (and every
    /// Python thread it starts) runs sandboxed.
    init(policy: SandboxPolicy? = nil, level: Int = 0) {
        self.policy = policy
        self.level = PythonThreadPool.level(level)
    }

    deinit {
        if let context { ReferencePool.defer(context, under: policy) }
    }

    /// Queues a job; returns false once the lane is stopping. If the lane is abandoned before the
    /// job starts, `fail` gets the reason instead.
    @discardableResult
    func submit(_ run: @escaping @Sendable (borrowing PythonGIL) -> Void, fail: @escaping @Sendable (any Error) -> Void) -> Bool {
        let schedule = lock.withLock { () -> Bool? in
            guard !stopping else { return nil }
            jobs.append(Job(run: run, fail: fail))
            if scheduled { return false }
            scheduled = true
            return true
        }
        guard let schedule else { return false }
        if schedule { PythonThreadPool.shared.schedule(self) }
        return true
    }

    /// Runs the next job on the calling pool thread, whose thread state `saved` holds (the GIL is
    /// released before and after). The pool then calls ``jobEnded()``.
    func runNext(_ saved: inout UnsafeMutablePointer<PyThreadState>?) {
        let job = lock.withLock { () -> Job in
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            return job
        }
        let outer = rlm_sandbox_enter(policy?.pointer)
        PyEval_RestoreThread(saved)
        ReferencePool.drain()
        let entered = enterContext()
        job.run(PythonGIL())
        if let entered { exitContext(entered) }
        saved = PyEval_SaveThread()
        if let mine = rlm_sandbox_enter(outer) { rlm_sandbox_policy_release(mine) }
        if let outer { rlm_sandbox_policy_release(outer) }
    }

    /// Enters the lane's `contextvars` context on the calling thread (GIL held); returns it, or
    /// `nil` if no context could be made (the job then runs in the thread's own, empty one).
    ///
    /// A context that cannot be entered (it is still marked entered, because code left another
    /// context entered above it when an earlier job ended) is replaced by a fresh one: a job
    /// never runs in the context some other namespace left on the thread.
    private func enterContext() -> UnsafeMutablePointer<PyObject>? {
        if let context, PyContext_Enter(context) == 0 { return context }
        PyErr_Clear()
        if let stale = context {
            rlm_decref(stale)
            context = nil
        }
        guard let fresh = PyContext_New() else {
            PyErr_Clear()
            return nil
        }
        context = fresh
        guard PyContext_Enter(fresh) == 0 else {
            PyErr_Clear()
            return nil
        }
        return fresh
    }

    /// Leaves `context` (GIL held). Contexts that the job entered and left entered above it are
    /// left first, so the thread ends the job in the context it started it in.
    private func exitContext(_ context: UnsafeMutablePointer<PyObject>) {
        while let current = rlm_current_context(), current != context {
            if PyContext_Exit(current) != 0 {
                PyErr_Clear()
                return
            }
        }
        if PyContext_Exit(context) != 0 { PyErr_Clear() }
    }

    /// Whether more jobs wait after the one that ran: the pool queues the lane again. Otherwise
    /// the next ``submit(_:)`` schedules it. The pool calls this with its lock held and after it
    /// has taken back the thread the job held: a lane scheduled again before that would be taken
    /// by a second thread while the first still counted it, and one of the two would never be
    /// given back (a level whose count crept up this way ran out of threads for good).
    func jobEnded() -> Bool {
        lock.withLock { () -> Bool in
            if head < jobs.count { return true }
            scheduled = false
            return false
        }
    }

    /// How long a cancelled caller waits for its job to start before giving up on it.
    static let cancelledJobGrace: Duration = .seconds(5)

    /// Runs `body` on a pool thread with the GIL held, after the lane's earlier jobs, and returns
    /// its result.
    ///
    /// A cancelled caller whose job has not started within ``cancelledJobGrace`` (the GIL is held
    /// by code that cannot be stopped) gets `CancellationError` and the job is skipped. Jobs that
    /// start promptly run even for a cancelled caller, so clean-up after a cancellation works.
    func run<T: Sendable>(_ body: @escaping @Sendable (borrowing PythonGIL) throws -> T) async throws -> T {
        let job = PendingJob<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                job.attach(continuation)
                let accepted = submit({ gil in
                    guard job.start() else { return }
                    job.finish(Result { try body(gil) })
                }, fail: { job.finish(.failure($0)) })
                if !accepted {
                    job.finish(.failure(PythonError(code: .closed, message: "the Python namespace was closed")))
                }
                if Task.isCancelled { job.giveUpLater() }
            }
        } onCancel: {
            job.giveUpLater()
        }
    }

    /// Lets queued jobs finish and refuses new ones.
    func stop() {
        lock.withLock { stopping = true }
    }

    /// The running job is stuck in code that could not be stopped: its thread no longer counts
    /// against the level's limit, the lane takes no more jobs, and the jobs queued behind the
    /// stuck one fail with `error` at once (they could wait for good).
    ///
    /// Call it only while the stuck job provably still runs (``ExecutionControl/abandon(_:_:)``),
    /// so that the thread given back is that job's and not a later one's.
    func abandon(failing error: any Error) {
        let queued = lock.withLock { () -> ArraySlice<Job> in
            stopping = true
            defer {
                jobs.removeAll()
                head = 0
            }
            return jobs[head...]
        }
        PythonThreadPool.shared.abandon(self)
        for job in queued { job.fail(error) }
    }
}

/// One `PythonLane.run` call: resumed exactly once, by its job or by giving up on it.
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
        let nanoseconds = UInt64(PythonLane.cancelledJobGrace.components.seconds) * 1_000_000_000
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
