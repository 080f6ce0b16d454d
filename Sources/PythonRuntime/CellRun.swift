import CPython
import Foundation

/// One cell's execution, from compilation to its result (``PythonNamespace/execute(_:timeout:then:)``).
///
/// A cell whose top-level code calls an async native function is compiled as a coroutine (see
/// `compile_cell` in Python/support.py). When such a call outlasts
/// ``PythonThreads/suspensionDelay``, the coroutine yields it, the cell *suspends*: its output
/// capture is set aside, its lane is parked (the namespace's later jobs wait) and its thread goes
/// back to the pool. The call's result resumes it in a new job of the lane, on whichever thread
/// is free. Deadlines and stops follow it across threads: the deadline keeps running while it is
/// suspended, and a stop interrupts the awaited call, so the cell resumes with
/// `ExecutionInterrupted` raised where it waited.
///
/// The state between steps lives here and is touched only by the lane's jobs, one at a time,
/// with the GIL held.
final class CellRun: @unchecked Sendable {
    struct Settings: Sendable {
        var code: String
        var filename: String
        var outputLimit: Int?
        /// Nanoseconds of running time allowed, counted from the start of the code.
        var runningTime: UInt64?
        /// Nanoseconds stopped code has to return before the namespace is abandoned.
        var grace: UInt64
        /// Evaluated in the private scope after the cell, in its last job.
        var followUp: String?
    }

    private let settings: Settings
    private let globals: UnsafeSendableObject
    private let support: UnsafeSendableObject
    private let control: ExecutionControl
    private let ticket: ExecutionTicket
    private let lane: PythonLane
    private let onAbandon: @Sendable () -> Void
    private let clock = ContinuousClock()
    private var start = ContinuousClock.now
    private var coroutine: UnsafeMutablePointer<PyObject>?
    /// The output capture while the cell is suspended.
    private var capture: UnsafeMutablePointer<PyObject>?

    init(
        _ settings: Settings, globals: UnsafeSendableObject, support: UnsafeSendableObject, control: ExecutionControl,
        ticket: ExecutionTicket, lane: PythonLane, onAbandon: @escaping @Sendable () -> Void
    ) {
        self.settings = settings
        self.globals = globals
        self.support = support
        self.control = control
        self.ticket = ticket
        self.lane = lane
        self.onAbandon = onAbandon
    }

    private static var threadID: UInt { UInt(PyThread_get_thread_ident()) }

    /// The first job: compiles the cell and runs it until it ends or suspends.
    func begin(_ gil: borrowing PythonGIL) {
        let handles = Bootstrap.handles!
        start = clock.now
        do {
            _ = try PythonObject(borrowing: handles.beginCapture).call([try settings.outputLimit.makePythonObject(gil)], gil)
            let compiled: PythonObject
            do {
                let names: UnsafeMutablePointer<PyObject> = PyDict_GetItemString(support.pointer, PythonNamespace.suspendableKey) ?? rlm_none()
                compiled = try PythonObject(borrowing: handles.compileCell).call(
                    [try settings.code.makePythonObject(gil), try settings.filename.makePythonObject(gil), PythonObject(borrowing: names)], gil)
            } catch let syntaxError as PythonError {
                collect(status: .failed, error: syntaxError, gil)
                return
            }
            if let reason = control.begin(ticket, threadID: Self.threadID) {
                _ = try? PythonObject(borrowing: handles.endCapture).call([], gil)
                conclude(reason == .cancelled ? .failure(CancellationError()) : .success(ExecutionResult(status: .timedOut, error: reason.error)), gil)
                return
            }
            // The deadline counts from the start of the code, not from the call: time spent
            // waiting for a thread or the GIL on a busy host is not the code's.
            let deadline = settings.runningTime.map { Watchdog.now() + $0 }
            Watchdog.shared.watch(control, ticket: ticket, deadline: deadline, grace: settings.grace, onAbandon: onAbandon)
            let value = withExtendedLifetime(compiled) {
                PyEval_EvalCode(compiled.pointer, globals.pointer, globals.pointer)
            }
            if let value, rlm_is_coroutine(value) != 0 {
                coroutine = value
                rlm_incref(rlm_none())
                advance(.send(rlm_none()), gil)
            } else {
                ended(value, gil)
            }
        } catch {
            conclude(.failure(error), gil)
        }
    }

    /// What a step sends into the coroutine; the reference is owned.
    private enum Input {
        case send(UnsafeMutablePointer<PyObject>)
        case raise(UnsafeMutablePointer<PyObject>)
    }

    /// Runs the coroutine until it ends or yields a call still in flight.
    private func advance(_ first: Input, _ gil: borrowing PythonGIL) {
        guard let coroutine else { return }
        var input = first
        while true {
            var yielded: UnsafeMutablePointer<PyObject>?
            var finished = false
            switch input {
            case .send(let value):
                let status = PyIter_Send(coroutine, value, &yielded)
                rlm_decref(value)
                // On return, `yielded` is the return value; on an exception, nil.
                finished = status != PYGEN_NEXT
            case .raise(let exception):
                yielded = Self.throwInto(coroutine, exception, finished: &finished)
                rlm_decref(exception)
            }
            if finished {
                ended(yielded, gil)
                return
            }
            guard let yielded else { return }
            let waiter = SuspendedCall.waiter(of: yielded)
            rlm_decref(yielded)
            if let waiter {
                suspend(on: waiter, gil)
                return
            }
            input = .raise(Self.exception(
                "a cell can await only the REPL's own functions (a top-level await of anything else is not supported)"))
        }
    }

    /// `coroutine.throw(exception)`: the next yielded value, or (with `finished`) nil with the
    /// exception set, or a new `None` when the coroutine returned.
    private static func throwInto(
        _ coroutine: UnsafeMutablePointer<PyObject>, _ exception: UnsafeMutablePointer<PyObject>, finished: inout Bool
    ) -> UnsafeMutablePointer<PyObject>? {
        guard let method = PyObject_GetAttrString(coroutine, "throw") else {
            finished = true
            return nil
        }
        defer { rlm_decref(method) }
        if let next = PyObject_CallOneArg(method, exception) {
            finished = false
            return next
        }
        finished = true
        // The top level of a cell returns None; a StopIteration of its own would have become a
        // RuntimeError (PEP 479).
        guard PyErr_ExceptionMatches(rlm_exc_stop_iteration()) != 0 else { return nil }
        PyErr_Clear()
        rlm_incref(rlm_none())
        return rlm_none()
    }

    /// A new `RuntimeError` instance.
    private static func exception(_ message: String) -> UnsafeMutablePointer<PyObject> {
        PyErr_SetString(rlm_exc_runtime_error(), message)
        return takeException()
    }

    /// The exception set, normalized, with its traceback; the indicator is cleared.
    private static func takeException() -> UnsafeMutablePointer<PyObject> {
        var type: UnsafeMutablePointer<PyObject>?
        var value: UnsafeMutablePointer<PyObject>?
        var traceback: UnsafeMutablePointer<PyObject>?
        PyErr_Fetch(&type, &value, &traceback)
        PyErr_NormalizeException(&type, &value, &traceback)
        if let value, let traceback { PyException_SetTraceback(value, traceback) }
        if let type { rlm_decref(type) }
        if let traceback { rlm_decref(traceback) }
        if let value { return value }
        return exception("a native call failed without an exception")
    }

    /// Sets the cell aside until `waiter` has its result, and gives the thread back.
    private func suspend(on waiter: NativeCallWaiter, _ gil: borrowing PythonGIL) {
        control.suspend()
        if let pair = PyObject_CallNoArgs(Bootstrap.handles.suspendCapture) {
            capture = pair
        } else {
            PyErr_Clear()
        }
        lane.park()
        waiter.whenDone { [self] outcome in
            lane.resume { gil in self.resume(with: outcome, gil) }
        }
    }

    /// A later job: continues the cell with the result of the call it waited on.
    private func resume(with outcome: NativeCallWaiter.Outcome, _ gil: borrowing PythonGIL) {
        if let pair = capture {
            capture = nil
            if let done = PyObject_CallOneArg(Bootstrap.handles.resumeCapture, pair) { rlm_decref(done) } else { PyErr_Clear() }
            rlm_decref(pair)
        }
        // A stop requested meanwhile has interrupted the call, so `outcome` raises it.
        _ = control.resume(threadID: Self.threadID)
        if let object = NativeFunctionBox.object(for: outcome, gil) {
            advance(.send(object), gil)
        } else {
            advance(.raise(Self.takeException()), gil)
        }
    }

    /// The code returned (`value`, owned) or raised (nil, exception set).
    private func ended(_ value: UnsafeMutablePointer<PyObject>?, _ gil: borrowing PythonGIL) {
        var status = ExecutionResult.Status.completed
        var error: PythonError?
        if let value {
            rlm_decref(value)
        } else {
            error = PythonError.fetch(gil)
            status = .failed
        }
        if let coroutine {
            self.coroutine = nil
            rlm_decref(coroutine)
        }
        let stopReason = control.end()
        Watchdog.shared.unwatch(ticket)
        switch stopReason {
        case .cancelled?:
            _ = try? PythonObject(borrowing: Bootstrap.handles.endCapture).call([], gil)
            conclude(.failure(CancellationError()), gil)
            return
        case .timedOut?:
            status = .timedOut
            var stopped = StopReason.timedOut.error
            stopped.traceback = error?.traceback ?? ""
            error = stopped
        case nil:
            break
        }
        collect(status: status, error: error, gil)
    }

    /// Ends the capture and concludes with the execution's result.
    private func collect(status: ExecutionResult.Status, error: PythonError?, _ gil: borrowing PythonGIL) {
        do {
            let captured = try PythonObject(borrowing: Bootstrap.handles.endCapture).call([], gil)
            let parts = try PythonValue(captured, gil).listValue ?? []
            conclude(.success(ExecutionResult(
                status: status,
                stdout: parts.first?.stringValue ?? "",
                stderr: parts.count > 2 ? parts[2].stringValue ?? "" : "",
                stdoutOmittedCharacters: parts.count > 1 ? parts[1].intValue ?? 0 : 0,
                stderrOmittedCharacters: parts.count > 3 ? parts[3].intValue ?? 0 : 0,
                error: error,
                duration: clock.now - start)), gil)
        } catch {
            conclude(.failure(error), gil)
        }
    }

    /// Evaluates the follow-up expression after a cell that ran, and resumes the caller.
    private func conclude(_ outcome: Result<ExecutionResult, any Error>, _ gil: borrowing PythonGIL) {
        guard let expression = settings.followUp, case .success(var result) = outcome, result.status != .abandoned else {
            ticket.finish(outcome)
            return
        }
        if let value = PyRun_StringFlags(expression, Py_eval_input, support.pointer, support.pointer, nil) {
            result.followUp = try? PythonValue(PythonObject(owning: value), gil)
        } else {
            PyErr_Clear()
        }
        ticket.finish(.success(result))
    }
}
