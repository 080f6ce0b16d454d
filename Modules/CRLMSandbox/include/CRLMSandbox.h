// The in-process sandbox of swift-rlm: a PEP 578 audit hook, per-thread policies, guarded
// functions and the stop trace. Everything here is plain C over the CPython API; the policy
// contents and the Python-level set-up live in Swift and in `sandbox.py`.
#ifndef SWIFT_RLM_SANDBOX_H
#define SWIFT_RLM_SANDBOX_H

#include <sys/select.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

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
    const char *const *_Nullable read_roots, size_t read_count,
    const char *const *_Nullable write_roots, size_t write_count,
    const char *const *_Nullable native_roots, size_t native_root_count,
    const char *const *_Nullable native_modules, size_t native_module_count,
    unsigned flags);
void rlm_sandbox_policy_retain(rlm_sandbox_policy *policy);
void rlm_sandbox_policy_release(rlm_sandbox_policy *policy);

/// Makes `policy` (retained) the calling thread's policy; NULL leaves the sandbox. Returns the
/// previous one, which the caller now owns (release it, or pass it back to restore it).
rlm_sandbox_policy *_Nullable rlm_sandbox_enter(rlm_sandbox_policy *_Nullable policy);

/// Adds the audit hook. Call once, before the interpreter is initialised (PEP 578: hooks added
/// then cannot be removed by Python code). Returns 0 on success.
int rlm_sandbox_install_hook(void);

/// Creates the `_swift_rlm_sandbox` module (GIL held, after initialisation). Returns a new
/// reference, or NULL with an exception set.
PyObject *_Nullable rlm_sandbox_make_module(void);

/// Stops the Python thread `thread_id` (GIL held): raises `exception_type` in it asynchronously
/// and sets a trace function that raises it again on every line, call and return, so code that
/// catches the exception and loops still ends. Returns 1 if the thread was found.
int rlm_sandbox_stop_thread(unsigned long thread_id, PyObject *exception_type);

/// Removes the stop trace and any pending asynchronous exception from the calling thread (GIL held).
void rlm_sandbox_clear_stop(void);

#pragma clang assume_nonnull end

#endif
