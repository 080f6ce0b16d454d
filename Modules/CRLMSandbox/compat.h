// The CPython versions the sandbox supports, and what stopping code needs from each
// (compat_stop.c). Every other file uses only the API that 3.11 to 3.14 share.
#ifndef SWIFT_RLM_SANDBOX_COMPAT_H
#define SWIFT_RLM_SANDBOX_COMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030F0000
#error "swift-rlm supports CPython 3.11 to 3.14: point pkg-config's python3-embed at one of them (PKG_CONFIG_PATH), see the README"
#endif
#if defined(Py_GIL_DISABLED)
#error "swift-rlm needs a CPython with the GIL (not a free-threaded build): point pkg-config's python3-embed at one"
#endif

typedef struct rlm_stop_slot rlm_stop_slot;

/// Sets up stopping for the process (GIL held, before sandbox.py runs). 0, or -1 with an exception set.
int rlm_compat_stop_install(void);
/// Starts watching for the first line of `code` on the calling thread. 0, or -1 when it cannot.
int rlm_compat_watch_start(rlm_stop_slot *slot, PyObject *code);
/// Stops watching (GIL held, on the slot's thread).
void rlm_compat_unwatch(rlm_stop_slot *slot);
/// A round of stopping `execution`, which runs on `slot`'s thread (GIL held, another thread).
/// `first`: the first round for it. Returns whether the execution still runs.
int rlm_compat_stop(rlm_stop_slot *slot, uint64_t execution, int first, int inject);
/// The calling thread's execution ended (GIL held); `stopped`: a stop had been asked for it.
void rlm_compat_end_execution(rlm_stop_slot *slot, int stopped);
/// Withdraws a stop the thread has not taken since the last round; 1 if there was one.
int rlm_compat_withdraw(rlm_stop_slot *slot);
/// Lowers the interpreter's "asynchronous exception pending" flag after withdrawals.
void rlm_compat_lower_pending_flag(PyObject *exception_type);
/// A collection starts or ends on the calling thread, whose slot this is.
void rlm_compat_collection_began(rlm_stop_slot *slot);
void rlm_compat_collection_ended(rlm_stop_slot *slot);

#endif
