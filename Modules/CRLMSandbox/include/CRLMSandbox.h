// The in-process sandbox of swift-rlm: a PEP 578 audit hook, per-thread policies, guarded
// functions, finalizer confinement and stopping model code. Everything here is plain C over the
// CPython API (3.11 to 3.14; what differs between versions is in compat_stop.c); the policy
// contents and the Python-level set-up live in Swift and in `sandbox.py`. The files and their
// concerns are listed in internal.h.
#ifndef SWIFT_RLM_SANDBOX_H
#define SWIFT_RLM_SANDBOX_H

#include <sys/select.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#pragma clang assume_nonnull begin

/// A set of permissions for model code. Immutable once created, reference-counted, shareable
/// between threads.
typedef struct rlm_sandbox_policy rlm_sandbox_policy;

/// Flags of a policy.
enum {
    /// Sockets are allowed (off by default).
    RLM_SANDBOX_ALLOW_NETWORK = 1u << 0,
};

/// Creates a policy (reference count 1). Paths are canonicalised with realpath(3) where they
/// exist. `native_roots`: directories native extensions may load from; `native_modules`: extra
/// extension modules allowed by name. Returns NULL when out of memory.
rlm_sandbox_policy *_Nullable rlm_sandbox_policy_create(
    const char *_Nullable const *_Nullable read_roots, size_t read_count,
    const char *_Nullable const *_Nullable write_roots, size_t write_count,
    const char *_Nullable const *_Nullable native_roots, size_t native_root_count,
    const char *_Nullable const *_Nullable native_modules, size_t native_module_count,
    unsigned flags);
void rlm_sandbox_policy_retain(rlm_sandbox_policy *policy);
void rlm_sandbox_policy_release(rlm_sandbox_policy *policy);

/// Makes `policy` (retained) the calling thread's policy; NULL leaves the sandbox. Returns the
/// previous one, which the caller now owns (release it, or pass it back to restore it).
rlm_sandbox_policy *_Nullable rlm_sandbox_enter(rlm_sandbox_policy *_Nullable policy);

/// The finalizer policy (nothing allowed) that the cyclic collector runs under while any other
/// policy exists, made when sandbox.py installs the collector guard; NULL before. The bridge's
/// own threads that may release objects (the interrupter) run under it too. Borrowed.
rlm_sandbox_policy *_Nullable rlm_sandbox_finalizer_policy(void);

/// Adds the audit hook. Call once, before the interpreter is initialised (PEP 578: hooks added
/// then cannot be removed by Python code). Returns 0 on success.
int rlm_sandbox_install_hook(void);

/// Creates the `_swift_rlm_sandbox` module (GIL held, after initialisation). Returns a new
/// reference, or NULL with an exception set.
PyObject *_Nullable rlm_sandbox_make_module(void);

/// The stop machinery's record of one thread that runs executions: its thread state and the
/// execution running on it. Opaque; never freed (see stop.c).
typedef struct rlm_stop_slot rlm_stop_slot;

/// A monotonic clock in nanoseconds (CLOCK_MONOTONIC), the one execution start times use.
uint64_t rlm_sandbox_now(void);

/// Marks the start of an execution of `code` on the calling thread (GIL held): returns the
/// thread's slot and stores the execution's id in `execution`, or returns NULL when out of
/// memory. With `watch_start`, the slot records when the execution runs its first line of `code`
/// (``rlm_sandbox_execution_started``).
rlm_stop_slot *_Nullable rlm_sandbox_begin_execution(PyObject *code, int watch_start, uint64_t *execution);

/// Whether `execution` has run its first line, and when (``rlm_sandbox_now``). Any thread, no GIL.
int rlm_sandbox_execution_started(const rlm_stop_slot *slot, uint64_t execution, uint64_t *started_at);

/// Marks the end of the calling thread's execution (GIL held): stop rounds no longer act on it,
/// and the stop trace and any pending asynchronous exception are removed. May release and take
/// back the GIL, so call it with no lock held.
void rlm_sandbox_end_execution(void);

/// One round of stopping `execution` (GIL held), if it still runs on `slot`'s thread. From then on
/// that thread raises `exception_type` on every line, jump and call of model code (code outside
/// the library directories and frozen modules), but never in library code, whose `finally`
/// clauses release the import lock and other locks, nor in the finalizers a collection runs
/// there, which may be any namespace's. On CPython 3.11, when `inject` is non-zero and the thread
/// is paused in model code, it also raises it there asynchronously (compat_stop.c). Call it every
/// few milliseconds until the execution returns, after ``rlm_sandbox_withdraw_stop``. Returns 1
/// while the execution runs. May release and take back the GIL, so call it with no lock held.
int rlm_sandbox_stop(rlm_stop_slot *slot, uint64_t execution, PyObject *exception_type, int inject);

/// Withdraws an asynchronous exception that `execution` has not taken since the last round
/// (GIL held): the thread is blocked outside the bytecode loop or starved. Returns 1 if one was
/// withdrawn; then call ``rlm_sandbox_lower_pending_flag`` before the next injections. Only
/// CPython 3.11 injects; on later versions it returns 0.
int rlm_sandbox_withdraw_stop(rlm_stop_slot *slot, uint64_t execution);

/// Lowers the interpreter's "asynchronous exception pending" flag after withdrawals (GIL held),
/// by raising `exception_type` in the calling thread and taking it at once. It hides every
/// pending asynchronous exception, so call it before a round's injections, not after.
void rlm_sandbox_lower_pending_flag(PyObject *exception_type);

/// Sets the directories whose code the stop trace leaves alone: a sequence of `str` prefixes,
/// each ending in a separator (GIL held). Returns 0, or -1 with an exception set.
int rlm_sandbox_set_library_paths(PyObject *paths);

#pragma clang assume_nonnull end

#endif
