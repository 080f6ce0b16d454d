// The audit hook (PEP 578). CPython calls it, with the GIL held, for every audited operation on
// any thread; on a thread without a policy it allows everything, on a sandboxed thread it applies
// the thread's policy (policy.c). What CPython does not audit is guarded instead (guards.c).
#include "internal.h"

#include <stdio.h>
#include <string.h>

// MARK: - The audit hook

static const char *const denied_imports[] = {
    "ctypes", "_ctypes", "_ctypes_test", "cffi", "_cffi_backend", "_xxsubinterpreters", "_xxinterpchannels",
    "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase", "_testclinic", "_testimportmultiple",
    "_xxtestfuzz", "_posixshmem", "readline", "termios", "_curses", "_curses_panel", "_tkinter", "ossaudiodev",
    "nis", NULL,
};

static int is_denied_import(const char *module) {
    for (const char *const *name = denied_imports; *name; name++) {
        size_t length = strlen(*name);
        if (strncmp(module, *name, length) == 0 && (module[length] == 0 || module[length] == '.')) return 1;
    }
    return 0;
}

static int check_import(rlm_sandbox_policy *policy, PyObject *args) {
    PyObject *module = PyTuple_Size(args) > 0 ? PyTuple_GET_ITEM(args, 0) : NULL;
    PyObject *filename = PyTuple_Size(args) > 1 ? PyTuple_GET_ITEM(args, 1) : NULL;
    if (!module || !PyUnicode_Check(module)) return 0;
    const char *name = PyUnicode_AsUTF8(module);
    if (!name) return -1;
    // A module the host allowed, or a submodule of one ("numpy" allows "numpy.core._multiarray_umath").
    for (size_t i = 0; i < policy->native_module_count; i++) {
        size_t length = strlen(policy->native_modules[i]);
        if (strncmp(policy->native_modules[i], name, length) == 0 && (name[length] == 0 || name[length] == '.')) return 0;
    }
    if (is_denied_import(name)) {
        char what[256];
        snprintf(what, sizeof what, "importing %s", name);
        return rlm_deny("native-code", what, "model code may not load foreign-function or interpreter-internal modules");
    }
    // CPython raises a second `import` event with the file name when it loads an extension module.
    if (filename && PyUnicode_Check(filename)) {
        const char *file = PyUnicode_AsUTF8(filename);
        if (!file) return -1;
        char resolved[PATH_MAX];
        if (rlm_canonical_path(file, resolved) == 0 && rlm_path_under(resolved, policy->native_roots, policy->native_root_count)) return 0;
        char what[PATH_MAX + 64];
        snprintf(what, sizeof what, "loading the native extension %s (%s)", name, file);
        return rlm_deny("native-code", what, "the host did not allow this extension module");
    }
    return 0;
}

static int starts_with(const char *text, const char *prefix) {
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static PyObject *argument(PyObject *args, Py_ssize_t index) {
    return PyTuple_Check(args) && PyTuple_Size(args) > index ? PyTuple_GET_ITEM(args, index) : Py_None;
}

/// Checks the event's first argument as a file descriptor (anything else passes as -1).
static int check_first_descriptor(rlm_sandbox_policy *policy, PyObject *args, enum rlm_access_kind kind, const char *event) {
    PyObject *fd = argument(args, 0);
    long value = PyLong_Check(fd) ? PyLong_AsLong(fd) : -1;
    if (value == -1 && PyErr_Occurred()) return -1;
    return rlm_check_descriptor(policy, value, kind, event);
}

static int audit_hook(const char *event, PyObject *args, void *user_data) {
    (void)user_data;
    rlm_sandbox_policy *policy = rlm_current_policy;
    if (!policy || rlm_host_operation) return 0;
    switch (event[0]) {
    case 'b':
        if (strcmp(event, "builtins.input") == 0 || strcmp(event, "builtins.breakpoint") == 0)
            return rlm_deny("standard-input", event, "model code may not read the host's standard input");
        break;
    case 'c':
        if (starts_with(event, "ctypes.")) return rlm_deny("native-code", event, "model code may not use ctypes");
        if (starts_with(event, "cpython.PyInterpreterState"))
            return rlm_deny("introspection", event, "model code may not create interpreters");
        break;
    case 'f':
        if (starts_with(event, "fcntl.")) return check_first_descriptor(policy, args, RLM_ACCESS_WRITE, event);
        break;
    case 'g':
        if (starts_with(event, "gc.get_"))
            return rlm_deny("introspection", event, "model code may not walk the interpreter's objects (other REPLs live there)");
        break;
    case 'i':
        if (strcmp(event, "import") == 0) return check_import(policy, args);
        break;
    case 'm':
        if (strcmp(event, "mmap.__new__") == 0) return check_first_descriptor(policy, args, RLM_ACCESS_ANY, event);
        break;
    case 'o':
        if (strcmp(event, "open") == 0) {
            enum rlm_access_kind kind = rlm_argument_is_write(argument(args, 1), argument(args, 2)) ? RLM_ACCESS_WRITE : RLM_ACCESS_READ;
            return rlm_check_path_object(policy, argument(args, 0), kind, "open");
        }
        if (strcmp(event, "os.system") == 0 || strcmp(event, "os.exec") == 0 || strcmp(event, "os.posix_spawn") == 0 ||
            strcmp(event, "os.spawn") == 0 || strcmp(event, "os.fork") == 0 || strcmp(event, "os.forkpty") == 0 ||
            strcmp(event, "os.startfile") == 0)
            return rlm_deny("processes", event, "model code may not start processes");
        if (strcmp(event, "os.kill") == 0 || strcmp(event, "os.killpg") == 0)
            return rlm_deny("signals", event, "model code may not send signals");
        if (strcmp(event, "os.chdir") == 0)
            return rlm_deny("process-state", event, "the working directory belongs to the host process");
        if (strcmp(event, "os.putenv") == 0 || strcmp(event, "os.unsetenv") == 0)
            return rlm_deny("environment", event, "the process environment belongs to the host (os.environ in the REPL is a private copy)");
        if (strcmp(event, "os.link") == 0 || strcmp(event, "os.symlink") == 0)
            return rlm_deny("file-write", event, "model code may not create links");
        if (strcmp(event, "os.listdir") == 0 || strcmp(event, "os.scandir") == 0 || strcmp(event, "os.listxattr") == 0) {
            PyObject *path = argument(args, 0);
            if (path == Py_None) path = PyUnicode_FromString(".");
            else Py_INCREF(path);
            if (!path) return -1;
            int result = rlm_check_path_object(policy, path, RLM_ACCESS_READ, event);
            Py_DECREF(path);
            return result;
        }
        if (strcmp(event, "os.rename") == 0) {
            if (rlm_check_path_object(policy, argument(args, 0), RLM_ACCESS_WRITE, event) < 0) return -1;
            return rlm_check_path_object(policy, argument(args, 1), RLM_ACCESS_WRITE, event);
        }
        if (strcmp(event, "os.remove") == 0 || strcmp(event, "os.rmdir") == 0 || strcmp(event, "os.mkdir") == 0 ||
            strcmp(event, "os.truncate") == 0 || strcmp(event, "os.chmod") == 0 || strcmp(event, "os.chown") == 0 ||
            strcmp(event, "os.utime") == 0 || strcmp(event, "os.chflags") == 0 || strcmp(event, "os.lchflags") == 0 ||
            strcmp(event, "os.setxattr") == 0 || strcmp(event, "os.removexattr") == 0 || strcmp(event, "os.lchmod") == 0)
            return rlm_check_path_object(policy, argument(args, 0), RLM_ACCESS_WRITE, event);
        break;
    case 'p':
        if (strcmp(event, "pty.spawn") == 0) return rlm_deny("processes", event, "model code may not start processes");
        break;
    case 'r':
        if (strcmp(event, "resource.setrlimit") == 0 || strcmp(event, "resource.prlimit") == 0)
            return rlm_deny("process-state", event, "resource limits belong to the host process");
        break;
    case 's':
        if (starts_with(event, "socket.")) {
            if (policy->flags & RLM_SANDBOX_ALLOW_NETWORK) return 0;
            return rlm_deny("network", event, "model code may not open network connections");
        }
        if (strcmp(event, "subprocess.Popen") == 0) return rlm_deny("processes", event, "model code may not start processes");
        if (strcmp(event, "sys._current_frames") == 0 || strcmp(event, "sys._current_exceptions") == 0)
            return rlm_deny("introspection", event, "model code may not inspect other threads");
        if (strcmp(event, "sys.settrace") == 0 && rlm_installing_trace) return 0;
        if (strcmp(event, "sys.settrace") == 0 || strcmp(event, "sys.setprofile") == 0 || strcmp(event, "sys.addaudithook") == 0)
            return rlm_deny("introspection", event, "tracing and audit hooks belong to the host");
        if (starts_with(event, "sys.monitoring."))
            return rlm_deny("introspection", event, "tracing and monitoring belong to the host (they stop model code)");
        if (strcmp(event, "signal.pthread_kill") == 0) return rlm_deny("signals", event, "model code may not send signals");
        if (strcmp(event, "shutil.copyfile") == 0 || strcmp(event, "shutil.copymode") == 0 ||
            strcmp(event, "shutil.copystat") == 0 || strcmp(event, "shutil.copytree") == 0 || strcmp(event, "shutil.move") == 0) {
            if (rlm_check_path_object(policy, argument(args, 0), strcmp(event, "shutil.move") == 0 ? RLM_ACCESS_WRITE : RLM_ACCESS_READ, event) < 0)
                return -1;
            return rlm_check_path_object(policy, argument(args, 1), RLM_ACCESS_WRITE, event);
        }
        if (strcmp(event, "shutil.rmtree") == 0 || strcmp(event, "shutil.chown") == 0)
            return rlm_check_path_object(policy, argument(args, 0), RLM_ACCESS_WRITE, event);
        if (strcmp(event, "sqlite3.connect") == 0) {
            PyObject *database = argument(args, 0);
            if (PyUnicode_Check(database)) {
                const char *name = PyUnicode_AsUTF8(database);
                if (!name) return -1;
                if (strcmp(name, ":memory:") == 0 || name[0] == 0) return 0;
            }
            return rlm_check_path_object(policy, database, RLM_ACCESS_WRITE, event);
        }
        if (starts_with(event, "sqlite3.") && strstr(event, "extension"))
            return rlm_deny("native-code", event, "model code may not load SQLite extensions");
        break;
    case 't':
        if (strcmp(event, "tempfile.mkstemp") == 0 || strcmp(event, "tempfile.mkdtemp") == 0)
            return rlm_check_path_object(policy, argument(args, 0), RLM_ACCESS_WRITE, event);
        break;
    case 'w':
        if (strcmp(event, "webbrowser.open") == 0) return rlm_deny("processes", event, "model code may not start processes");
        break;
    default:
        break;
    }
    return 0;
}

int rlm_sandbox_install_hook(void) {
    return PySys_AddAuditHook(audit_hook, NULL);
}
