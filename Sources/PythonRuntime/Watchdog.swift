import CPython
import CRLMSandbox
import Foundation

/// Enforces deadlines for every namespace in the process, with two dedicated threads.
///
/// - The timer thread never takes the GIL: it fires deadlines and, when stopped code does not
///   return within the grace period (a C-level loop that holds the GIL), abandons the execution
///   so that its caller is resumed anyway.
/// - The interrupter thread takes the GIL every few milliseconds while some execution is being
///   stopped and injects `ExecutionInterrupted` into it again, until it returns.
final class Watchdog: @unchecked Sendable {
    static let shared = Watchdog()

    /// How often a stopped execution gets the exception again.
    static let reinjectInterval: UInt64 = 5_000_000

    private struct Watch {
        let control: ExecutionControl
        let ticket: ExecutionTicket
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

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Watches one running execution until ``unwatch(_:)``.
    func watch(
        _ control: ExecutionControl, ticket: ExecutionTicket, deadline: UInt64?, grace: UInt64,
        onAbandon: @escaping @Sendable () -> Void
    ) {
        timerCondition.withLock {
            watches[ObjectIdentifier(ticket)] = Watch(
                control: control, ticket: ticket, deadline: deadline, grace: grace, abandonAt: nil, onAbandon: onAbandon)
            timerCondition.signal()
        }
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
                if let deadline = watch.deadline {
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
            for watch in abandoned where watch.control.isRunning(watch.ticket) { watch.onAbandon() }
        }
    }

    private func interrupterLoop() {
        do { try Interpreter.ensureStarted() } catch { return }
        let state = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        _ = state
        while true {
            interruptCondition.lock()
            while interrupting.isEmpty { interruptCondition.wait() }
            let targets = interrupting
            interruptCondition.unlock()

            PyEval_RestoreThread(saved)
            // Withdrawals first: lowering CPython's pending flag hides every pending exception,
            // so it must come before this round's injections.
            var withdrew = false
            for (control, ticket) in targets.values where control.withdrawUntaken(ticket) { withdrew = true }
            if withdrew { rlm_sandbox_lower_pending_flag(Bootstrap.handles.executionInterrupted) }
            var finished: [ObjectIdentifier] = []
            for (key, (control, ticket)) in targets where !control.inject(ticket) {
                finished.append(key)
            }
            saved = PyEval_SaveThread()

            interruptCondition.withLock {
                for key in finished { interrupting[key] = nil }
            }
            usleep(UInt32(Self.reinjectInterval / 1000))
        }
    }
}
