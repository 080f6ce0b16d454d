import CPython
import CRLMSandbox
import Foundation

/// Why an execution was asked to stop.
enum StopReason: Sendable {
    case timedOut
    case cancelled

    var error: PythonError {
        switch self {
        case .timedOut:
            PythonError(code: .timedOut, typeName: "ExecutionInterrupted", message: "the execution ran past its deadline and was stopped")
        case .cancelled:
            PythonError(code: .interrupted, typeName: "ExecutionInterrupted", message: "the execution was cancelled")
        }
    }
}

/// One call to ``PythonNamespace/execute(_:timeout:)``: it can be cancelled before it starts,
/// while it runs, or while one of its native calls waits.
final class ExecutionTicket: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<ExecutionResult, any Error>?
    fileprivate var stopReason: StopReason?

    init(_ continuation: CheckedContinuation<ExecutionResult, any Error>) {
        self.continuation = continuation
    }

    /// Resumes the caller once; later calls do nothing.
    func finish(_ result: Result<ExecutionResult, any Error>) {
        let continuation = lock.withLock { () -> CheckedContinuation<ExecutionResult, any Error>? in
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(with: result)
    }
}

/// A native call blocked on async Swift work, woken by its result or by a stop request.
///
/// It is also the task executor of that work: while the Python thread waits (GIL released), it
/// runs the task's jobs itself, so an `llm_query` does not hand its work to a thread of the
/// cooperative pool and back. Each hand-off is a context switch, which on small virtual machines
/// costs tens of microseconds. Once the wait is over (a result, or a stop), jobs that still arrive,
/// such as the rest of a cancelled task, run on the global concurrent executor instead.
final class NativeCallWaiter: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<PythonValue, any Error>?
    private var task: Task<Void, Never>?
    private var jobs: [UnownedJob] = []
    private var waiting = true

    func attach(_ task: Task<Void, Never>) {
        let cancelNow = condition.withLock { () -> Bool in
            self.task = task
            return result != nil
        }
        if cancelNow { task.cancel() }
    }

    func complete(_ value: Result<PythonValue, any Error>) {
        condition.withLock {
            if result == nil { result = value }
            condition.broadcast()
        }
    }

    func interrupt(_ reason: StopReason) {
        complete(.failure(reason.error))
        condition.withLock { task }?.cancel()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = condition.withLock { () -> Bool in
            guard waiting else { return false }
            jobs.append(job)
            condition.broadcast()
            return true
        }
        if !queued { forward(job) }
    }

    private func forward(_ job: UnownedJob) {
        let executor = asUnownedTaskExecutor()
        DispatchQueue.global().async { job.runSynchronously(on: executor) }
    }

    /// Blocks the calling thread (which must not hold the GIL) until a result arrives, running the
    /// task's jobs meanwhile.
    func wait() -> Result<PythonValue, any Error> {
        let executor = asUnownedTaskExecutor()
        condition.lock()
        while result == nil {
            if jobs.isEmpty {
                condition.wait()
                continue
            }
            let batch = jobs
            jobs.removeAll()
            condition.unlock()
            for job in batch { job.runSynchronously(on: executor) }
            condition.lock()
        }
        waiting = false
        let leftover = jobs
        jobs.removeAll()
        let outcome = result!
        condition.unlock()
        for job in leftover { forward(job) }
        return outcome
    }
}

/// The stop machinery of one namespace: which execution runs, on which thread's slot, its
/// deadline, and the native calls it is waiting on.
///
/// Stopping makes the execution's thread raise `ExecutionInterrupted` (a `BaseException`) on
/// every line, jump and call of model code, every few milliseconds until the execution returns:
/// loops that catch `Exception` or even `BaseException` and carry on still end at their next
/// line. Library code and frozen modules never get it, so their `finally` clauses release the
/// import lock and other locks, and neither do the finalizers a collection runs on that thread,
/// which may be any namespace's. On CPython 3.12 and later this is a `sys.monitoring` tool; on
/// 3.11 a trace function on the thread, plus an asynchronous exception while it is paused in
/// model code (Modules/CRLMSandbox/compat_stop.c). It cannot reach code that never returns to
/// the bytecode loop, such as a catastrophic regular expression: see
/// ``PythonError/Code/abandoned``.
///
/// A stop names the thread *state* and the execution id recorded when the execution began
/// (``rlm_stop_slot``), and the C side acts only while that execution still runs there, checked
/// with the GIL held right before it acts. The lock here guards only Swift state: nothing that
/// can run Python or wait for the GIL is ever called with it held (docs/architecture.md,
/// "Threads, locks and the GIL").
final class ExecutionControl: @unchecked Sendable {
    /// The execution that runs now.
    struct Running {
        let ticket: ExecutionTicket
        let slot: OpaquePointer
        let execution: UInt64
    }

    private let lock = NSLock()
    private var running: Running?
    private var stopRequested: StopReason?
    private var abandoned = false
    private var roundsUntilInjection = 0
    private var waiters: [ObjectIdentifier: NativeCallWaiter] = [:]

    /// Marks `ticket` as running as `execution` on `slot`'s thread. Returns the reason if it was
    /// stopped before it started.
    func begin(_ ticket: ExecutionTicket, slot: OpaquePointer, execution: UInt64) -> StopReason? {
        lock.withLock {
            if let reason = ticket.stopReason { return reason }
            running = Running(ticket: ticket, slot: slot, execution: execution)
            stopRequested = nil
            abandoned = false
            roundsUntilInjection = 0
            return nil
        }
    }

    /// Marks the execution as finished; returns why it was stopped, if it was, and whether it
    /// had been abandoned (its caller already has an answer). The caller then clears the
    /// thread's stop with ``rlm_sandbox_end_execution()``, outside this lock.
    func end() -> (reason: StopReason?, abandoned: Bool) {
        lock.withLock {
            defer {
                running = nil
                stopRequested = nil
                abandoned = false
            }
            return (stopRequested, abandoned)
        }
    }

    /// Asks `ticket`'s execution to stop: now if it runs, or as soon as it would start.
    func requestStop(_ ticket: ExecutionTicket, reason: StopReason) {
        let woken: [NativeCallWaiter]? = lock.withLock {
            guard ticket.stopReason == nil else { return nil }
            ticket.stopReason = reason
            guard running?.ticket === ticket else { return nil }
            stopRequested = reason
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        guard let woken else { return }
        for waiter in woken { waiter.interrupt(reason) }
        Watchdog.shared.startInterrupting(self, ticket: ticket)
    }

    /// Rounds without an asynchronous exception after one was withdrawn untaken (the thread was
    /// blocked in C or starved): 20 rounds of 5 ms. Meanwhile the trace still stops model code.
    static let roundsAfterWithdrawal = 20

    /// `ticket`'s execution if it still runs.
    func target(_ ticket: ExecutionTicket) -> Running? {
        lock.withLock { running?.ticket === ticket ? running : nil }
    }

    /// Notes that an untaken exception was withdrawn from `ticket`'s execution.
    func withdrew(_ ticket: ExecutionTicket) {
        lock.withLock {
            guard running?.ticket === ticket else { return }
            roundsUntilInjection = Self.roundsAfterWithdrawal
        }
    }

    /// This round of stopping `ticket`'s execution: where it runs, whether the round may inject
    /// an exception, and whether the execution was abandoned; `nil` if it no longer runs.
    func round(_ ticket: ExecutionTicket) -> (target: Running, inject: Bool, abandoned: Bool)? {
        lock.withLock {
            guard let running, running.ticket === ticket else { return nil }
            guard roundsUntilInjection == 0 else {
                roundsUntilInjection -= 1
                return (running, false, abandoned)
            }
            return (running, true, abandoned)
        }
    }

    /// Marks `ticket`'s execution abandoned and runs `body` while it provably still runs (the
    /// execution cannot end meanwhile); does nothing if it has ended or was abandoned already.
    /// `body` may take the lane's and the pool's locks, never the GIL.
    func abandon(_ ticket: ExecutionTicket, _ body: () -> Void) {
        lock.withLock {
            guard running?.ticket === ticket, !abandoned else { return }
            abandoned = true
            body()
        }
    }

    /// Registers a waiting native call; returns the stop reason instead if a stop was requested.
    func register(_ waiter: NativeCallWaiter) -> StopReason? {
        lock.withLock {
            if let stopRequested { return stopRequested }
            if running != nil { waiters[ObjectIdentifier(waiter)] = waiter }
            return nil
        }
    }

    func unregister(_ waiter: NativeCallWaiter) {
        _ = lock.withLock { waiters.removeValue(forKey: ObjectIdentifier(waiter)) }
    }
}
