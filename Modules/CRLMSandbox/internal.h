// What the sandbox's C files share with one another; include/CRLMSandbox.h is the API.
//
// The files, one concern each:
//   policy.c      policies, the calling thread's policy, path and descriptor checks
//   audit.c       the PEP 578 audit hook
//   guards.c      guarded functions, threads that inherit their creator's policy, the module
//   finalizers.c  the cyclic collector under the finalizer policy
//   stop.c        executions, their slots and stop rounds
//   compat_stop.c what stopping needs from each CPython version (the only file that reaches
//                 into CPython's internals, for 3.11)
#ifndef SWIFT_RLM_SANDBOX_INTERNAL_H
#define SWIFT_RLM_SANDBOX_INTERNAL_H

#include "CRLMSandbox.h"
#include "compat.h"

#include <limits.h>
#include <stdatomic.h>

#define RLM_HIDDEN __attribute__((visibility("hidden")))

struct rlm_sandbox_policy {
    atomic_long references;
    unsigned flags;
    char **read_roots;
    size_t read_count;
    char **write_roots;
    size_t write_count;
    char **native_roots;
    size_t native_root_count;
    char **native_modules;
    size_t native_module_count;
};

// MARK: - policy.c

/// The calling thread's policy (NULL: not sandboxed).
extern _Thread_local rlm_sandbox_policy *rlm_current_policy RLM_HIDDEN;
/// Policies that exist now (the finalizer policy among them, once made).
extern _Atomic long rlm_live_policies RLM_HIDDEN;
/// Set while the bridge itself performs an audited operation on a sandboxed thread.
extern _Thread_local int rlm_host_operation RLM_HIDDEN;
/// Set while this thread installs or removes the stop machinery's trace, so that the audit hook
/// lets exactly that `sys.settrace` event through on a sandboxed thread.
extern _Thread_local int rlm_installing_trace RLM_HIDDEN;

/// Raises PermissionError("[sandbox: RULE] WHAT is not allowed: WHY") and returns -1.
RLM_HIDDEN int rlm_deny(const char *rule, const char *what, const char *why);

enum rlm_access_kind { RLM_ACCESS_READ, RLM_ACCESS_WRITE, RLM_ACCESS_ANY };

/// The canonical absolute form of `path`: symbolic links resolved as far as the path exists.
RLM_HIDDEN int rlm_canonical_path(const char *path, char out[PATH_MAX]);
/// Whether `path` (canonical) is one of `roots` or under one.
RLM_HIDDEN int rlm_path_under(const char *path, char *const *roots, size_t count);
/// Checks a file descriptor: 0 allowed, -1 with PermissionError set.
RLM_HIDDEN int rlm_check_descriptor(rlm_sandbox_policy *policy, long fd, enum rlm_access_kind kind, const char *what);
/// Checks a path argument (str, bytes, os.PathLike or a descriptor): 0 allowed, -1 exception set.
RLM_HIDDEN int rlm_check_path_object(rlm_sandbox_policy *policy, PyObject *object, enum rlm_access_kind kind, const char *what);
/// Whether an `open` mode or `os.open` flags write.
RLM_HIDDEN int rlm_argument_is_write(PyObject *mode, PyObject *flags);

// MARK: - finalizers.c

extern PyTypeObject rlm_callbacks_view_type RLM_HIDDEN;
/// install_collector_guard(gc), a method of the module.
RLM_HIDDEN PyObject *rlm_install_collector_guard(PyObject *module, PyObject *gc);

// MARK: - stop.c

// Every thread that runs executions has a slot: its thread state and the id of the execution
// running on it (0 between executions). See stop.c for who may read what, and when.
struct rlm_stop_slot {
    PyThreadState *tstate;
    uint64_t execution;
    /// The execution a stop was asked for, and the exception it raises.
    uint64_t stop;
    PyObject *stop_type;
    /// Whether to record when `execution` runs its first line, and the code watched for it.
    int watch_start;
    PyObject *watched;
    /// Cyclic collections running on the slot's thread now: the finalizers they run may belong
    /// to any namespace, so a stop never raises in them.
    int collecting;
    /// CPython 3.11: an asynchronous stop set aside while a collection runs (compat_stop.c).
    PyObject *held_exception;
    /// The execution whose first line ran, and when (rlm_sandbox_now): read without the GIL.
    _Atomic uint64_t started;
    _Atomic uint64_t started_at;
};

/// The calling thread's slot, or NULL before its first execution.
RLM_HIDDEN rlm_stop_slot *rlm_stop_own_slot(void);
/// Records that the slot's execution ran its first line (GIL held, on the slot's thread).
RLM_HIDDEN void rlm_stop_mark_started(rlm_stop_slot *slot);
/// Whether the stop asked for the calling thread's execution raises now, in `code` (GIL held):
/// a stop was asked for the execution that runs, no collection runs on the thread, and `code`
/// is model code (not the library's, not a frozen module's).
RLM_HIDDEN int rlm_stop_raises_in(rlm_stop_slot *slot, PyCodeObject *code);
/// Whether `code` belongs to the library directories or a frozen module.
RLM_HIDDEN int rlm_is_library_code(PyCodeObject *code);
/// Called by the collector's callback as a collection starts and ends on the calling thread.
RLM_HIDDEN void rlm_stop_collection_began(void);
RLM_HIDDEN void rlm_stop_collection_ended(void);

#endif
