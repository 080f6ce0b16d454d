import CPython
import CRLMSandbox
import Foundation

/// Enforces deadlines for every namespace in the process, with two dedicated threads.
///
/// - The timer thread never takes the GIL: it fires deadlines and, when stopped code does not
///   return within the grace period (a C-level loop that holds the GIL), abandons the execution
///   so that its caller is resumed anyway.
/// - The interrupter thread takes the GIL every few milliseconds while some execution is being
///   stopped and runs a stop round for it (``rlm_sandbox_stop``), until it returns.
final class Watchdog: @unchecked Sendable {
    static let shared = Watchdog()

    /// How often a stopped execution gets the exception again.
    static let reinjectInterval: UInt64 = 5_000_000

    /// How often an abandoned execution (stuck in C, perhaps for good) gets it, while no other
    /// execution is being stopped: its trace stays set, so model code it returns to still stops,
    /// and a tight loop it returns to gets the exception within this time.
    static let abandonedReinjectInterval: UInt64 = 1_000_000_000

    private struct Watch {
        let control: ExecutionControl
        let ticket: ExecutionTicket
        let target: ExecutionControl.Running
        /// How long the code may run, counted from its first line.
        let runningTime: UInt64?
        /// When to look again: the end of the running time, or, until the code has run its first
        /// line, a provisional one.
        var deadline: UInt64?
        let grace: UInt64
        var abandonAt: UInt64?
        let onAbandon: @Sendable () -> Void
    }

    private let timerCondition = NSCondition()
    private var watches: [ObjectIdentifier: Watch] = [:]

    private let interruptCondition = NSCondition()
    private var interrupting: [ObjectIdentifier: (ExecutionControl, ExecutionTicket)] = [:]

    private init() {
        let timer = Thread { [self] in timerLoop() }
        timer.name = "rlm.python.watchdog"
        timer.start()
        let interrupter = Thread { [self] in interrupterLoop() }
        interrupter.name = "rlm.python.interrupter"
        interrupter.start()
    }

    /// The clock of deadlines and of execution start times (CLOCK_MONOTONIC, nanoseconds).
    static func now() -> UInt64 { rlm_sandbox_now() }

    /// Watches one running execution until ``unwatch(_:)``. Its `runningTime` counts from the
    /// code's first line (``rlm_sandbox_execution_started``): time spent waiting for a thread or
    /// the GIL before it, on a busy host, is not the code's.
    func watch(
        _ control: ExecutionControl, ticket: ExecutionTicket, target: ExecutionControl.Running, runningTime: UInt64?,
        grace: UInt64, onAbandon: @escaping @Sendable () -> Void
    ) {
        timerCondition.withLock {
            watches[ObjectIdentifier(ticket)] = Watch(
                control: control, ticket: ticket, target: target, runningTime: runningTime,
                deadline: runningTime.map { Self.now() + $0 }, grace: grace, abandonAt: nil, onAbandon: onAbandon)
            timerCondition.signal()
        }
    }

    /// When `watch`'s code runs out of time: its running time after its first line, or, if it
    /// has not reached its first line, one running time from now (when to look again).
    private static func deadline(of watch: Watch, now: UInt64) -> UInt64? {
        guard let runningTime = watch.runningTime else { return nil }
        var startedAt: UInt64 = 0
        guard rlm_sandbox_execution_started(watch.target.slot, watch.target.execution, &startedAt) != 0 else {
            return now + runningTime
        }
        return startedAt + runningTime
    }

    func unwatch(_ ticket: ExecutionTicket) {
        _ = timerCondition.withLock { watches.removeValue(forKey: ObjectIdentifier(ticket)) }
        _ = interruptCondition.withLock { interrupting.removeValue(forKey: ObjectIdentifier(ticket)) }
    }

    /// Starts injecting the stop exception into `ticket`'s execution, and arms its abandonment.
    func startInterrupting(_ control: ExecutionControl, ticket: ExecutionTicket) {
        let key = ObjectIdentifier(ticket)
        interruptCondition.withLock {
            interrupting[key] = (control, ticket)
            interruptCondition.signal()
        }
        timerCondition.withLock {
            if var watch = watches[key], watch.abandonAt == nil {
                watch.abandonAt = Self.now() + watch.grace
                watch.deadline = nil
                watches[key] = watch
                timerCondition.signal()
            }
        }
    }

    private func timerLoop() {
        while true {
            var expired: [Watch] = []
            var abandoned: [Watch] = []
            timerCondition.lock()
            let now = Self.now()
            var next: UInt64 = .max
            for (key, watch) in watches {
                if var deadline = watch.deadline {
                    if deadline <= now, let actual = Self.deadline(of: watch, now: now), actual > now {
                        deadline = actual
                        watches[key]?.deadline = actual
                    }
                    if deadline <= now {
                        expired.append(watch)
                        watches[key]?.deadline = nil
                    } else {
                        next = min(next, deadline)
                    }
                }
                if let abandonAt = watch.abandonAt {
                    if abandonAt <= now {
                        abandoned.append(watch)
                        watches[key] = nil
                    } else {
                        next = min(next, abandonAt)
                    }
                }
            }
            if expired.isEmpty && abandoned.isEmpty {
                if next == .max {
                    timerCondition.wait()
                } else {
                    let seconds = Double(next - now) / 1e9
                    _ = timerCondition.wait(until: Date(timeIntervalSinceNow: seconds))
                }
            }
            timerCondition.unlock()
            for watch in expired { watch.control.requestStop(watch.ticket, reason: .timedOut) }
            for watch in abandoned { watch.control.abandon(watch.ticket, watch.onAbandon) }
        }
    }

    private func interrupterLoop() {
        do { try Interpreter.ensureStarted() } catch { return }
        _ = PyGILState_Ensure()
        // Finalizers that run here (objects this thread releases, or a collection its
        // allocations trigger) run confined: this thread needs no permission of its own.
        if let outer = rlm_sandbox_enter(rlm_sandbox_finalizer_policy()) { rlm_sandbox_policy_release(outer) }
        var saved = PyEval_SaveThread()
        while true {
            interruptCondition.lock()
            while interrupting.isEmpty { interruptCondition.wait() }
            let targets = interrupting
            interruptCondition.unlock()

            PyEval_RestoreThread(saved)
            // No lock is held across the C calls below: each can run Python code and so hand
            // the GIL to another thread, which may be the very execution ending. The C side
            // checks, with the GIL held, that the execution it names still runs.
            // Withdrawals first: lowering CPython's pending flag hides every pending exception,
            // so it must come before this round's injections.
            var withdrew = false
            for (control, ticket) in targets.values {
                guard let target = control.target(ticket),
                    rlm_sandbox_withdraw_stop(target.slot, target.execution) != 0
                else { continue }
                control.withdrew(ticket)
                withdrew = true
            }
            if withdrew { rlm_sandbox_lower_pending_flag(Bootstrap.handles.executionInterrupted) }
            var finished: [ObjectIdentifier] = []
            var onlyAbandoned = true
            for (key, (control, ticket)) in targets {
                guard let (target, inject, abandoned) = control.round(ticket),
                    rlm_sandbox_stop(target.slot, target.execution, Bootstrap.handles.executionInterrupted, inject ? 1 : 0) != 0
                else {
                    finished.append(key)
                    continue
                }
                if !abandoned { onlyAbandoned = false }
            }
            saved = PyEval_SaveThread()

            // A new stop signals the condition, so it never waits for an abandoned one's interval.
            let interval = onlyAbandoned ? Self.abandonedReinjectInterval : Self.reinjectInterval
            interruptCondition.withLock {
                for key in finished { interrupting[key] = nil }
                _ = interruptCondition.wait(until: Date(timeIntervalSinceNow: Double(interval) / 1e9))
            }
        }
    }
}
