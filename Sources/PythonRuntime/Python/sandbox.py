"""Process-wide set-up of the in-process sandbox, run once at interpreter start (no policy yet).

The audit hook (Modules/CRLMSandbox) sees what CPython audits. What it does not audit is made safe
here, once for the process, in a way that changes nothing for threads without a sandbox policy:

- functions that must never run on a sandboxed thread (os._exit, signal.signal, setuid, ...) are
  replaced in their modules by guards: C objects that call the original only when the calling
  thread has no policy, and never expose it to Python code;
- raw file-descriptor functions (os.close, os.write, ...) are guarded to descriptors of files
  under the thread's allowed paths, so model code cannot close or write the host's streams,
  sockets or pipes;
- threads started from a sandboxed thread carry its policy;
- os.environ is a view: sandboxed threads see a scrubbed copy that is not backed by the process
  environment, other threads the real one;
- tempfile's default directory is the sandboxed thread's scratch directory.

Embedded in the PythonRuntime module at build time (SwiftPM `embedInCode`); linted and tested as
Python. See docs/security.md for what this does and does not stop.
"""
import _signal
import _thread
import faulthandler
import os
import posix
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import MutableMapping

import _posixsubprocess
import _swift_rlm_sandbox as _sandbox

_guard = _sandbox.guard
_DENY = _sandbox.DENY


def _guard_names(module, names, rule, why, mode=_DENY, cap=0):
    for name in names:
        original = getattr(module, name, None)
        if original is None:
            continue
        setattr(module, name, _guard(original, rule, module.__name__ + "." + name, why, mode, cap))


# -- The process and its state -------------------------------------------------------------------

_PROCESS_STATE = (
    "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "initgroups", "setsid", "setpgid", "setpgrp", "tcsetpgrp", "chroot", "fchdir",
    "umask", "nice", "setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
    "login_tty", "openpty", "pidfd_open", "setns", "unshare", "mkfifo", "mknod",
    "dup2", "closerange", "copy_file_range", "splice",
)
_guard_names(posix, ("_exit", "abort"), "process-exit",
             "model code may not end or crash the host process; set answer or raise instead")
_guard_names(posix, _PROCESS_STATE, "process-state", "this changes the host process, not the REPL")
_guard_names(posix, ("read", "pread", "readv", "preadv"), "descriptors", "", _sandbox.FD_READ)
_guard_names(posix, ("write", "pwrite", "writev", "pwritev", "ftruncate", "fchmod", "fchown",
                     "posix_fallocate", "lockf", "sendfile"), "descriptors", "", _sandbox.FD_WRITE)
_guard_names(posix, ("close", "dup", "fsync", "fdatasync", "lseek", "set_inheritable",
                     "set_blocking"), "descriptors", "", _sandbox.FD_ANY)
# os re-exports posix's functions: point it at the guards too.
for _name in dir(posix):
    _value = getattr(posix, _name)
    if type(_value) is _sandbox.Guard and hasattr(os, _name):
        setattr(os, _name, _value)
del _name, _value

_guard_names(_posixsubprocess, ("fork_exec",), "processes", "model code may not start processes")
_guard_names(_thread, ("interrupt_main",), "signals", "model code may not interrupt the host")
# CPython 3.12 and later stop model code through a sys.monitoring tool (Modules/CRLMSandbox/
# compat_stop.c, which took these functions before this ran): model code may not turn it off.
if hasattr(sys, "monitoring"):
    _guard_names(sys.monitoring, ("use_tool_id", "free_tool_id", "register_callback", "set_events",
                                  "set_local_events", "restart_events"),
                 "introspection", "tracing and monitoring belong to the host (they stop model code)")
_guard_names(faulthandler, [name for name in dir(faulthandler) if not name.startswith("__")],
             "process-exit", "the fault handler belongs to the host process")

_SIGNALS = ("signal", "setitimer", "alarm", "pthread_kill", "pthread_sigmask", "siginterrupt",
            "set_wakeup_fd", "raise_signal", "pidfd_send_signal", "sigwait", "sigwaitinfo",
            "sigtimedwait")
_guard_names(_signal, _SIGNALS, "signals", "signal handling belongs to the host process")
_guard_names(signal, _SIGNALS, "signals", "signal handling belongs to the host process")

_guard_names(sys, ("setswitchinterval", "setdlopenflags"), "process-state",
             "this changes the whole interpreter, not the REPL")
_guard_names(sys, ("setrecursionlimit",), "process-state", "", _sandbox.MAX_INT, 20_000)


def _guard_popen():
    # The audit hook stops a process start in any case (the `subprocess.Popen` event); checking
    # first gives the model that reason instead of one about the pipes Popen opens before it.
    original = subprocess.Popen.__init__

    def __init__(self, *args, **kwargs):
        if _sandbox.active():
            raise PermissionError("[sandbox: processes] subprocess.Popen is not allowed: "
                                  "model code may not start processes")
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = __init__


_guard_popen()
del _guard_popen

# -- Threads inherit the policy of the thread that starts them ------------------------------------

_sandbox.install_thread_start(_thread.start_new_thread)
_thread.start_new_thread = _sandbox.start_new_thread
_thread.start_new = _sandbox.start_new_thread
threading._start_new_thread = _sandbox.start_new_thread
if hasattr(_thread, "start_joinable_thread"):  # CPython 3.13 and later start threading's threads so
    _sandbox.install_joinable_thread_start(_thread.start_joinable_thread)
    _thread.start_joinable_thread = _sandbox.start_joinable_thread
    threading._start_joinable_thread = _sandbox.start_joinable_thread

# -- The environment ------------------------------------------------------------------------------

_SAFE_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")


def _scrubbed_environment():
    data = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for name in _SAFE_VARIABLES:
        if name in os.environ:
            data[name] = os.environ[name]
    return data


class _EnvironmentView(MutableMapping):
    """os.environ: the process environment for host threads, a private scrubbed copy (not
    backed by the process environment: setting a variable changes only the copy) for sandboxed
    threads."""

    __slots__ = ("_host", "_copy", "_encode")

    def __init__(self, host, copy, encode):
        object.__setattr__(self, "_host", host)
        object.__setattr__(self, "_copy", copy)
        object.__setattr__(self, "_encode", encode)

    def _target(self):
        return self._copy if _sandbox.active() else self._host()

    def __getitem__(self, key):
        return self._target()[key]

    def __setitem__(self, key, value):
        target = self._target()
        if target is self._copy:
            encode = self._encode
            encode(key)
            encode(value)
        target[key] = value

    def __delitem__(self, key):
        del self._target()[key]

    def __iter__(self):
        return iter(list(self._target()))

    def __len__(self):
        return len(self._target())

    def __repr__(self):
        return "environ(" + repr(dict(self._target())) + ")"

    def copy(self):
        return dict(self)

    def setdefault(self, key, value):
        if key not in self:
            self[key] = value
        return self[key]

    def __setattr__(self, name, value):
        raise AttributeError("read-only")


def _check_str(value):
    if not isinstance(value, str):
        raise TypeError("str expected, not %s" % type(value).__name__)


def _check_bytes(value):
    if not isinstance(value, bytes):
        raise TypeError("bytes expected, not %s" % type(value).__name__)


def _install_environment():
    host_environ, host_environb = os.environ, os.environb
    copy = _scrubbed_environment()
    copyb = {key.encode(): value.encode() for key, value in copy.items()}
    # The host's mappings are reachable only through guards, which sandboxed threads cannot call.
    why = "the process environment belongs to the host"
    host = _guard(lambda: host_environ, "environment", "os.environ", why)
    hostb = _guard(lambda: host_environb, "environment", "os.environb", why)
    os.environ = _EnvironmentView(host, copy, _check_str)
    os.environb = _EnvironmentView(hostb, copyb, _check_bytes)
    # posix.environ is the interpreter's start-up snapshot, and the storage of the host's
    # os.environ: the module gets a scrubbed dict, the host's mapping keeps the original.
    posix.environ = dict(copyb)


_install_environment()
del _install_environment

# -- Temporary files go to the scratch directory ------------------------------------------------

_host_gettempdir = tempfile._gettempdir


def _gettempdir():
    scratch = _sandbox.scratch()
    return scratch if scratch is not None else _host_gettempdir()


tempfile._gettempdir = _gettempdir

# -- Finalizers collected anywhere run confined --------------------------------------------------

# While any sandbox exists, each collection of the cyclic collector runs under the finalizer
# policy, whatever thread triggers it; gc.callbacks becomes a view sandboxed threads cannot use.
import gc

_sandbox.install_collector_guard(gc)
