// Stopping model code: executions, the slots of the threads that run them, and stop rounds.
// What each CPython version needs to reach a running thread is in compat_stop.c.
//
// Every thread that runs executions has a slot: its thread state and the id of the execution
// running on it (0 between executions). A stop names the slot and the execution it is meant for,
// and acts only while that execution still runs there: a thread *state* is targeted, never a
// thread id (on CPython 3.11 a thread that is being started has a state at the head of the list
// with its parent's id, and a failed start leaves such a state behind for good), and never an
// execution that has since ended on the same thread.
//
// Lifetimes (docs/architecture.md, "Threads, locks and the GIL"):
// - A slot is made by its own thread at its first execution and never freed: a stop round may
//   still name it after the execution it was meant for has ended.
// - Every field but `started` and `started_at` is read and written with the GIL held, which
//   orders them.
// - Another thread dereferences `slot->tstate` only while `slot->execution` is the execution it
//   means, checked with the GIL held, and with nothing between the check and the use that could
//   hand the GIL over. While an execution runs, its thread is inside it, so its state is alive.
// - A round never reads the stopped thread's frames on CPython 3.12 and later. On 3.11 it reads
//   the innermost one with the collector disabled (compat_stop.c): making a frame object could
//   otherwise run finalizers that hand the GIL to that thread, which frees the frame.
#include "internal.h"

#include <stdlib.h>
#include <time.h>

// Directories of library code (the standard library, site-packages): a stop never raises in
// their code, nor in frozen modules (importlib). Raising there on every line would also raise
// inside their `finally` clauses and `__exit__` methods, which release locks: a stop that landed
// in the middle of an import left the import lock held, and every later import in the process
// waited for it forever. Model code's own frames still get the exception on each line.
static PyObject *library_paths;

int rlm_sandbox_set_library_paths(PyObject *paths) {
    PyObject *tuple = PySequence_Tuple(paths);
    if (!tuple) return -1;
    Py_XSETREF(library_paths, tuple);
    return 0;
}

int rlm_is_library_code(PyCodeObject *code) {
    PyObject *filename = code->co_filename;
    if (!PyUnicode_Check(filename)) return 0;
    static PyObject *frozen;
    if (!frozen) frozen = PyUnicode_InternFromString("<frozen ");
    if (frozen && PyUnicode_Tailmatch(filename, frozen, 0, PY_SSIZE_T_MAX, -1) == 1) return 1;
    Py_ssize_t count = library_paths ? PyTuple_GET_SIZE(library_paths) : 0;
    for (Py_ssize_t index = 0; index < count; index++) {
        if (PyUnicode_Tailmatch(filename, PyTuple_GET_ITEM(library_paths, index), 0, PY_SSIZE_T_MAX, -1) == 1) return 1;
    }
    return 0;
}

static _Thread_local rlm_stop_slot *own_slot;
static _Atomic uint64_t last_execution;

rlm_stop_slot *rlm_stop_own_slot(void) {
    return own_slot;
}

uint64_t rlm_sandbox_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

void rlm_stop_mark_started(rlm_stop_slot *slot) {
    slot->watch_start = 0;
    atomic_store_explicit(&slot->started_at, rlm_sandbox_now(), memory_order_relaxed);
    atomic_store_explicit(&slot->started, slot->execution, memory_order_release);
}

int rlm_stop_raises_in(rlm_stop_slot *slot, PyCodeObject *code) {
    return slot && slot->execution != 0 && slot->stop == slot->execution && slot->collecting == 0 &&
           !rlm_is_library_code(code);
}

rlm_stop_slot *_Nullable rlm_sandbox_begin_execution(PyObject *code, int watch_start, uint64_t *execution) {
    rlm_stop_slot *slot = own_slot;
    if (!slot) {
        slot = calloc(1, sizeof *slot);
        if (!slot) return NULL;
        own_slot = slot;
    }
    slot->tstate = PyThreadState_Get();
    slot->stop = 0;
    slot->watch_start = watch_start;
    slot->execution = atomic_fetch_add_explicit(&last_execution, 1, memory_order_relaxed) + 1;
    *execution = slot->execution;
    // Without the watch the first line would go unseen, and the deadline with it: count from now.
    if (watch_start && rlm_compat_watch_start(slot, code) < 0) {
        PyErr_Clear();
        rlm_stop_mark_started(slot);
    }
    return slot;
}

int rlm_sandbox_execution_started(const rlm_stop_slot *slot, uint64_t execution, uint64_t *started_at) {
    if (atomic_load_explicit(&slot->started, memory_order_acquire) != execution) return 0;
    *started_at = atomic_load_explicit(&slot->started_at, memory_order_relaxed);
    return 1;
}

void rlm_sandbox_end_execution(void) {
    rlm_stop_slot *slot = own_slot;
    if (!slot) return;
    int stopped = slot->execution != 0 && slot->stop == slot->execution;
    // First: from here on no stop round acts on this thread for the execution that ended.
    slot->execution = 0;
    slot->stop = 0;
    slot->watch_start = 0;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    rlm_compat_unwatch(slot);
    rlm_compat_end_execution(slot, stopped);
    PyErr_Restore(type, value, traceback);
}

int rlm_sandbox_stop(rlm_stop_slot *slot, uint64_t execution, PyObject *exception_type, int inject) {
    if (slot->execution != execution) return 0;
    int first = slot->stop != execution;
    if (first) {
        slot->stop = execution;
        Py_XSETREF(slot->stop_type, Py_NewRef(exception_type));
    }
    return rlm_compat_stop(slot, execution, first, inject);
}

int rlm_sandbox_withdraw_stop(rlm_stop_slot *slot, uint64_t execution) {
    if (slot->execution != execution) return 0;
    return rlm_compat_withdraw(slot);
}

void rlm_sandbox_lower_pending_flag(PyObject *exception_type) {
    rlm_compat_lower_pending_flag(exception_type);
}

void rlm_stop_collection_began(void) {
    rlm_stop_slot *slot = own_slot;
    if (!slot) return;
    if (slot->collecting++ == 0) rlm_compat_collection_began(slot);
}

void rlm_stop_collection_ended(void) {
    rlm_stop_slot *slot = own_slot;
    if (!slot || slot->collecting == 0) return;
    if (--slot->collecting == 0) rlm_compat_collection_ended(slot);
}
