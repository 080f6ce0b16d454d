// What stopping model code needs from each CPython version: a way to make a thread that runs
// Python raise, from another thread, on the next line of model code, and to see an execution's
// first line. stop.c holds the rest, the same on every version.
//
// - CPython 3.12 and later: sys.monitoring (PEP 669), public API. The bridge claims a tool id
//   and, while any stop is under way, turns on its LINE, JUMP and PY_START events for every
//   thread; the callbacks raise only on the thread whose execution is being stopped
//   (rlm_stop_raises_in). Turning events on instruments the code every thread is running, so a
//   loop such as `while True: pass` is reached at its next jump. No other thread's state or
//   frames are ever read. An execution's first line is a local LINE event on its own code.
// - CPython 3.11 has no sys.monitoring. A C trace function is set on the stopped thread's state
//   (_PyEval_SetTrace: exported, declared in Include/cpython/ceval.h), since only it can target
//   another thread. The trace cannot reach `while True: pass` on 3.11 (that jump never calls it),
//   so an asynchronous exception goes in too, written into the thread's state and signalled with
//   _PyEval_SignalAsyncExc: the two halves of PyThreadState_SetAsyncExc, which finds its thread
//   by id, and ids are not unique on 3.11 (stop.c).
#include "internal.h"

#if PY_VERSION_HEX < 0x030C0000

#include <frameobject.h>

/// Declared in CPython 3.11's internal pycore_ceval.h and exported by its libpython: raises the
/// interpreter's "asynchronous exception pending" flag.
extern void _PyEval_SignalAsyncExc(PyInterpreterState *interp);

int rlm_compat_stop_install(void) {
    return 0;
}

static int control_trace(PyObject *unused, PyFrameObject *frame, int what, PyObject *arg);

/// Installs (or, with NULL, removes) the control trace on `target` (GIL held). Its audit event
/// can run Python hooks, so the GIL may change hands inside.
static void set_control_trace(PyThreadState *target, Py_tracefunc function) {
    int saved = rlm_installing_trace;
    rlm_installing_trace = 1;
    if (_PyEval_SetTrace(target, function, NULL) < 0) PyErr_Clear();
    rlm_installing_trace = saved;
}

// The trace function of a thread that runs an execution: it records the execution's first line
// (its deadline counts from there, not from a wait for the GIL before it), and, once a stop was
// asked for that execution, raises the stop on every line and call of model code. It removes
// itself once it has nothing left to do, so a trace left behind by a stop round that raced with
// the end of its execution never touches the next one.
static int control_trace(PyObject *unused, PyFrameObject *frame, int what, PyObject *arg) {
    (void)unused;
    (void)arg;
    rlm_stop_slot *slot = rlm_stop_own_slot();
    if (slot && slot->execution != 0) {
        if (slot->stop == slot->execution) {
            if (what == PyTrace_LINE || what == PyTrace_CALL) {
                PyCodeObject *code = PyFrame_GetCode(frame);
                int raises = rlm_stop_raises_in(slot, code);
                Py_DECREF(code);
                if (raises) {
                    PyErr_SetNone(slot->stop_type);
                    return -1;
                }
            }
            return 0;
        }
        if (slot->watch_start) {
            if (what != PyTrace_LINE) return 0;
            rlm_stop_mark_started(slot);
        }
    }
    set_control_trace(PyThreadState_Get(), NULL);
    return 0;
}

int rlm_compat_watch_start(rlm_stop_slot *slot, PyObject *code) {
    (void)code;
    set_control_trace(slot->tstate, control_trace);
    return slot->tstate->c_tracefunc == control_trace ? 0 : -1;
}

void rlm_compat_unwatch(rlm_stop_slot *slot) {
    (void)slot;
}

// Runs a trivial code object on the calling thread, so that the eval loop takes an asynchronous
// exception pending for this thread (GIL held; clears any exception it raises). The eval loop
// may hand the GIL to another thread first.
static void take_pending_exception(void) {
    static PyObject *nothing, *globals;
    if (!nothing) nothing = Py_CompileString("None", "<swift-rlm: take a pending stop>", Py_eval_input);
    if (!globals && (globals = PyDict_New())) PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
    if (nothing && globals) Py_XDECREF(PyEval_EvalCode(nothing, globals, globals));
    PyErr_Clear();
}

int rlm_compat_stop(rlm_stop_slot *slot, uint64_t execution, int first, int inject) {
    (void)first;
    PyThreadState *target = slot->tstate;
    if (target->c_tracefunc != control_trace) set_control_trace(target, control_trace);
    if (slot->execution != execution) return 0;
    // Finalizers that a collection runs there may be any namespace's: a later round injects.
    if (!inject || slot->collecting) return 1;
    // The trace alone cannot reach a tight loop, so an asynchronous exception goes in too, but
    // only while the thread's innermost frame is model code. The thread raises it where it
    // resumes in that frame, or at the entry of a function a C call makes (before that function
    // has taken any lock). Raised in the middle of library code, it could land between
    // `_imp.acquire_lock()` and the `try` that releases it, and a thread that then ended would
    // hold the import lock forever. While the thread is in library code, a later round tries again.
    //
    // Looking at the frame makes a frame object for it. With the collector on, that allocation
    // could run a collection whose finalizers hand the GIL to the stopped thread, which returns
    // from the frame and frees it before this round reads its code (a SIGSEGV in the host). So
    // the collector is off until the check is done; from the check to the write, nothing can
    // hand the GIL over, so the execution checked is the one that gets the exception.
    int collector_was_on = PyGC_Disable();
    PyFrameObject *frame = PyThreadState_GetFrame(target);
    int model_code = 0;
    if (frame) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        model_code = !rlm_is_library_code(code);
        Py_DECREF(code);
        Py_DECREF(frame);
    }
    if (collector_was_on) PyGC_Enable();
    if (model_code && !target->async_exc) {
        target->async_exc = Py_NewRef(slot->stop_type);
        _PyEval_SignalAsyncExc(target->interp);
    }
    return 1;
}

void rlm_compat_end_execution(rlm_stop_slot *slot, int stopped) {
    (void)stopped;
    PyThreadState *state = PyThreadState_Get();
    if (state->c_tracefunc == control_trace) set_control_trace(state, NULL);
    if (slot->held_exception) {
        if (!state->async_exc) state->async_exc = slot->held_exception;
        else Py_DECREF(slot->held_exception);
        slot->held_exception = NULL;
    }
    if (state->async_exc) {
        // An injected exception the execution ended before taking. Clearing it with
        // PyThreadState_SetAsyncExc(id, NULL) would raise the interpreter's "pending" flag with
        // nobody left to lower it: every thread would then stop for pending work at each check,
        // and a traced thread would spin at the entry of its next function. Letting the eval loop
        // take it lowers the flag.
        take_pending_exception();
        Py_CLEAR(state->async_exc);
    }
}

int rlm_compat_withdraw(rlm_stop_slot *slot) {
    // Not taken since the last round: the thread is blocked outside the bytecode loop (a C call,
    // a lock) or starved of the GIL. A pending exception keeps the interpreter's "pending" flag
    // raised for every thread, and a traced thread spins at the entry of each function while it
    // is raised, so take it back (the caller lowers the flag).
    if (!slot->tstate->async_exc) return 0;
    Py_CLEAR(slot->tstate->async_exc);
    return 1;
}

void rlm_compat_lower_pending_flag(PyObject *exception_type) {
    // CPython lowers the interpreter's flag only when a thread takes its own pending exception:
    // give this thread one and take it. While it is pending, this thread must run no other
    // Python code: making the trivial code's function object could run a collection here, and
    // the first finalizer it ran would raise the exception at its first line (any namespace's
    // `__del__`, a sandboxed probe's among them). This thread has no stop slot, so the collector
    // callback cannot set the exception aside as it does for a stopped thread; the collector is
    // off instead until the exception is taken. Finalizers of objects the trivial code frees run
    // after that.
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyThreadState *state = PyThreadState_Get();
    int collector_was_on = PyGC_Disable();
    Py_XSETREF(state->async_exc, Py_NewRef(exception_type));
    _PyEval_SignalAsyncExc(state->interp);
    take_pending_exception();
    Py_CLEAR(state->async_exc);
    if (collector_was_on) PyGC_Enable();
    PyErr_Restore(type, value, traceback);
}

// A stop injected before a collection began on the thread would be raised in the first
// finalizer it runs: it is set aside until the collection ends.
void rlm_compat_collection_began(rlm_stop_slot *slot) {
    PyThreadState *state = PyThreadState_Get();
    if (state->async_exc && !slot->held_exception) {
        slot->held_exception = state->async_exc;
        state->async_exc = NULL;
    }
}

void rlm_compat_collection_ended(rlm_stop_slot *slot) {
    if (!slot->held_exception) return;
    PyThreadState *state = PyThreadState_Get();
    if (!state->async_exc) {
        state->async_exc = slot->held_exception;
        // Another thread may have lowered the flag meanwhile, by taking its own.
        _PyEval_SignalAsyncExc(state->interp);
    } else {
        Py_DECREF(slot->held_exception);
    }
    slot->held_exception = NULL;
}

#else  // CPython 3.12 and later

/// The sys.monitoring tool id the bridge holds (3 or 4: neither has an assigned use).
static int tool = -1;
/// sys.monitoring.set_events and set_local_events, taken before sandbox.py guards them.
static PyObject *set_events, *set_local_events;
static long line_event, stop_events;
/// Executions with a stop asked for that have not ended, and whether the stop's events are on.
/// GIL held for all three.
static long stopping;
static int events_on, updating;

/// Calls one of sys.monitoring's functions as the host: the thread may be sandboxed (its
/// execution's end, a first line) or run under the finalizer policy (the interrupter), and the
/// audit hook denies sys.monitoring's events to model code.
static PyObject *call_as_host(PyObject *function, PyObject *arguments) {
    if (!arguments) return NULL;
    int saved = rlm_host_operation;
    rlm_host_operation = 1;
    PyObject *result = PyObject_Call(function, arguments, NULL);
    rlm_host_operation = saved;
    Py_DECREF(arguments);
    return result;
}

/// The callback of JUMP and PY_START events (and of LINE, through line_callback).
static PyObject *stop_callback(PyObject *self, PyObject *const *args, Py_ssize_t count) {
    (void)self;
    rlm_stop_slot *slot = rlm_stop_own_slot();
    if (slot && count > 0 && PyCode_Check(args[0]) && rlm_stop_raises_in(slot, (PyCodeObject *)args[0])) {
        PyErr_SetNone(slot->stop_type);
        return NULL;
    }
    Py_RETURN_NONE;
}

/// The callback of LINE events: an execution's first line, then the stop.
static PyObject *line_callback(PyObject *self, PyObject *const *args, Py_ssize_t count) {
    rlm_stop_slot *slot = rlm_stop_own_slot();
    if (slot && slot->watch_start && slot->execution != 0 && count > 0 && args[0] == slot->watched) {
        rlm_stop_mark_started(slot);
        rlm_compat_unwatch(slot);
    }
    return stop_callback(self, args, count);
}

static PyMethodDef stop_callback_def = {
    "swift_rlm_stop", (PyCFunction)(void (*)(void))stop_callback, METH_FASTCALL, NULL};
static PyMethodDef line_callback_def = {
    "swift_rlm_line", (PyCFunction)(void (*)(void))line_callback, METH_FASTCALL, NULL};

static long event_value(PyObject *events, const char *name) {
    PyObject *value = PyObject_GetAttrString(events, name);
    if (!value) return -1;
    long result = PyLong_AsLong(value);
    Py_DECREF(value);
    return result;
}

static int register_callback(PyObject *monitoring, long event, PyMethodDef *definition) {
    PyObject *callback = PyCFunction_New(definition, NULL);
    if (!callback) return -1;
    PyObject *previous = PyObject_CallMethod(monitoring, "register_callback", "ilO", tool, event, callback);
    Py_DECREF(callback);
    if (!previous) return -1;
    Py_DECREF(previous);
    return 0;
}

int rlm_compat_stop_install(void) {
    if (tool >= 0) return 0;
    PyObject *monitoring = PySys_GetObject("monitoring");
    if (!monitoring) {
        PyErr_SetString(PyExc_RuntimeError, "sys.monitoring is missing: stops need it on CPython 3.12 and later");
        return -1;
    }
    for (int candidate = 4; candidate >= 3 && tool < 0; candidate--) {
        PyObject *result = PyObject_CallMethod(monitoring, "use_tool_id", "is", candidate, "swift-rlm");
        if (result) {
            Py_DECREF(result);
            tool = candidate;
        } else {
            PyErr_Clear();
        }
    }
    if (tool < 0) {
        PyErr_SetString(PyExc_RuntimeError, "sys.monitoring tool ids 3 and 4 are both taken: swift-rlm's stops need one");
        return -1;
    }
    PyObject *events = PyObject_GetAttrString(monitoring, "events");
    if (!events) return -1;
    long line = event_value(events, "LINE"), jump = event_value(events, "JUMP"), start = event_value(events, "PY_START");
    Py_DECREF(events);
    if (PyErr_Occurred()) return -1;
    if (register_callback(monitoring, line, &line_callback_def) < 0 ||
        register_callback(monitoring, jump, &stop_callback_def) < 0 ||
        register_callback(monitoring, start, &stop_callback_def) < 0)
        return -1;
    set_events = PyObject_GetAttrString(monitoring, "set_events");
    set_local_events = PyObject_GetAttrString(monitoring, "set_local_events");
    if (!set_events || !set_local_events) return -1;
    line_event = line;
    stop_events = line | jump | start;
    return 0;
}

int rlm_compat_watch_start(rlm_stop_slot *slot, PyObject *code) {
    if (!code || !PyCode_Check(code)) return -1;
    PyObject *result = call_as_host(set_local_events, Py_BuildValue("(iOl)", tool, code, line_event));
    if (!result) return -1;
    Py_DECREF(result);
    Py_XSETREF(slot->watched, Py_NewRef(code));
    return 0;
}

void rlm_compat_unwatch(rlm_stop_slot *slot) {
    PyObject *code = slot->watched;
    if (!code) return;
    slot->watched = NULL;
    PyObject *result = call_as_host(set_local_events, Py_BuildValue("(iOi)", tool, code, 0));
    if (result) Py_DECREF(result);
    else PyErr_Clear();
    Py_DECREF(code);
}

/// Turns the stop's events on while any stop is under way, and off after the last (GIL held).
/// Each call can hand the GIL over; the loop looks again when it returns, and a call made
/// meanwhile on another thread leaves the work to it.
static void update_events(void) {
    if (updating) return;
    updating = 1;
    while (events_on != (stopping > 0)) {
        int on = stopping > 0;
        PyObject *result = call_as_host(set_events, Py_BuildValue("(il)", tool, on ? stop_events : 0L));
        if (!result) {
            PyErr_Clear();
            break;
        }
        Py_DECREF(result);
        events_on = on;
    }
    updating = 0;
}

int rlm_compat_stop(rlm_stop_slot *slot, uint64_t execution, int first, int inject) {
    (void)inject;
    if (first) {
        stopping++;
        update_events();
    }
    return slot->execution == execution;
}

void rlm_compat_end_execution(rlm_stop_slot *slot, int stopped) {
    (void)slot;
    if (!stopped) return;
    stopping--;
    update_events();
}

int rlm_compat_withdraw(rlm_stop_slot *slot) {
    (void)slot;
    return 0;
}

void rlm_compat_lower_pending_flag(PyObject *exception_type) {
    (void)exception_type;
}

void rlm_compat_collection_began(rlm_stop_slot *slot) {
    (void)slot;
}

void rlm_compat_collection_ended(rlm_stop_slot *slot) {
    (void)slot;
}

#endif
