// The in-process sandbox: see CRLMSandbox.h and docs/security.md.
//
// Model code runs on threads that carry a policy (a thread-local pointer). The audit hook
// (PEP 578) is called by CPython, with the GIL held, for every audited operation on any thread;
// on a thread without a policy it allows everything, on a sandboxed thread it applies the policy.
// Operations CPython does not audit (os._exit, os.close, signal.signal, ...) are replaced in their
// modules by guard objects (`Guard` below) whose wrapped function Python code cannot reach.
#include "CRLMSandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <frameobject.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static _Thread_local rlm_sandbox_policy *current_policy;
/// Policies that exist now (the finalizer policy among them, once made).
static _Atomic long live_policies;
/// Set while the bridge itself performs an audited operation on a sandboxed thread.
static _Thread_local int host_operation;
/// Set while this thread installs or removes the stop machinery's trace, so that the audit hook
/// lets exactly that `sys.settrace` event through on a sandboxed thread.
static _Thread_local int installing_trace;

// MARK: - Policies

static char **copy_strings(const char *const *strings, size_t count, int canonicalise) {
    char **copy = calloc(count ? count : 1, sizeof(char *));
    if (!copy) return NULL;
    for (size_t i = 0; i < count; i++) {
        char resolved[PATH_MAX];
        const char *source = strings[i];
        if (canonicalise && realpath(source, resolved)) source = resolved;
        copy[i] = strdup(source);
        if (!copy[i]) {
            for (size_t j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return NULL;
        }
        // A root never ends with '/', except "/" itself.
        size_t length = strlen(copy[i]);
        while (length > 1 && copy[i][length - 1] == '/') copy[i][--length] = 0;
    }
    return copy;
}

static void free_strings(char **strings, size_t count) {
    if (!strings) return;
    for (size_t i = 0; i < count; i++) free(strings[i]);
    free(strings);
}

rlm_sandbox_policy *rlm_sandbox_policy_create(
    const char *const *read_roots, size_t read_count, const char *const *write_roots, size_t write_count,
    const char *const *native_roots, size_t native_root_count, const char *const *native_modules,
    size_t native_module_count, unsigned flags) {
    rlm_sandbox_policy *policy = calloc(1, sizeof *policy);
    if (!policy) return NULL;
    atomic_init(&policy->references, 1);
    atomic_fetch_add_explicit(&live_policies, 1, memory_order_relaxed);
    policy->flags = flags;
    policy->read_roots = copy_strings(read_roots, read_count, 1);
    policy->read_count = read_count;
    policy->write_roots = copy_strings(write_roots, write_count, 1);
    policy->write_count = write_count;
    policy->native_roots = copy_strings(native_roots, native_root_count, 1);
    policy->native_root_count = native_root_count;
    policy->native_modules = copy_strings(native_modules, native_module_count, 0);
    policy->native_module_count = native_module_count;
    if (!policy->read_roots || !policy->write_roots || !policy->native_roots || !policy->native_modules) {
        rlm_sandbox_policy_release(policy);
        return NULL;
    }
    return policy;
}

void rlm_sandbox_policy_retain(rlm_sandbox_policy *policy) {
    atomic_fetch_add_explicit(&policy->references, 1, memory_order_relaxed);
}

void rlm_sandbox_policy_release(rlm_sandbox_policy *policy) {
    if (atomic_fetch_sub_explicit(&policy->references, 1, memory_order_acq_rel) != 1) return;
    atomic_fetch_sub_explicit(&live_policies, 1, memory_order_relaxed);
    free_strings(policy->read_roots, policy->read_count);
    free_strings(policy->write_roots, policy->write_count);
    free_strings(policy->native_roots, policy->native_root_count);
    free_strings(policy->native_modules, policy->native_module_count);
    free(policy);
}

rlm_sandbox_policy *rlm_sandbox_enter(rlm_sandbox_policy *policy) {
    rlm_sandbox_policy *previous = current_policy;
    if (policy) rlm_sandbox_policy_retain(policy);
    current_policy = policy;
    return previous;
}

// MARK: - Denials

/// Raises PermissionError("[sandbox: RULE] WHAT is not allowed: WHY") and returns -1.
static int deny(const char *rule, const char *what, const char *why) {
    PyErr_Format(PyExc_PermissionError, "[sandbox: %s] %s is not allowed: %s", rule, what, why);
    return -1;
}

// MARK: - Paths

/// Collapses "//", "/./" and "/../" in an absolute path, in place.
static void normalise(char *path) {
    char *out = path;
    const char *in = path;
    while (*in) {
        while (*in == '/') in++;
        const char *end = in;
        while (*end && *end != '/') end++;
        size_t length = (size_t)(end - in);
        if (length == 0) break;
        if (length == 1 && in[0] == '.') {
            // skip
        } else if (length == 2 && in[0] == '.' && in[1] == '.') {
            while (out > path && *(out - 1) != '/') out--;
            if (out > path) out--;
            while (out > path && *(out - 1) != '/') out--;
            if (out > path) out--;
        } else {
            *out++ = '/';
            memmove(out, in, length);
            out += length;
        }
        in = end;
    }
    if (out == path) *out++ = '/';
    *out = 0;
}

/// The canonical absolute form of `path`: symbolic links resolved as far as the path exists.
static int canonical(const char *path, char out[PATH_MAX]) {
    char absolute[PATH_MAX * 2];
    if (path[0] == '/') {
        if (strlen(path) >= sizeof absolute) return -1;
        strcpy(absolute, path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        if (snprintf(absolute, sizeof absolute, "%s/%s", cwd, path) >= (int)sizeof absolute) return -1;
    }
    normalise(absolute);
    if (strlen(absolute) >= PATH_MAX) return -1;
    if (realpath(absolute, out)) return 0;
    // Not there (yet): resolve the parent and keep the last component.
    char *slash = strrchr(absolute, '/');
    char parent[PATH_MAX];
    size_t parent_length = slash == absolute ? 1 : (size_t)(slash - absolute);
    memcpy(parent, absolute, parent_length);
    parent[parent_length] = 0;
    char resolved[PATH_MAX];
    if (realpath(parent, resolved)) {
        if (snprintf(out, PATH_MAX, "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, slash + 1) >= PATH_MAX) return -1;
        return 0;
    }
    strcpy(out, absolute);
    return 0;
}

static int under(const char *path, char *const *roots, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const char *root = roots[i];
        size_t length = strlen(root);
        if (strcmp(root, "/") == 0) return 1;
        if (strncmp(path, root, length) == 0 && (path[length] == 0 || path[length] == '/')) return 1;
    }
    return 0;
}

enum access_kind { ACCESS_READ, ACCESS_WRITE, ACCESS_ANY };

static int path_allowed(rlm_sandbox_policy *policy, const char *canonical_path, enum access_kind kind) {
    int writable = under(canonical_path, policy->write_roots, policy->write_count);
    if (kind == ACCESS_WRITE) return writable;
    return writable || under(canonical_path, policy->read_roots, policy->read_count);
}

static int deny_path(const char *path, enum access_kind kind, rlm_sandbox_policy *policy) {
    char message[PATH_MAX + 256];
    const char *scratch = policy->write_count > 0 ? policy->write_roots[0] : "(none)";
    if (kind == ACCESS_WRITE) {
        snprintf(message, sizeof message, "writing %s is not allowed: model code may write only under its scratch directory %s",
                 path, scratch);
        PyErr_Format(PyExc_PermissionError, "[sandbox: file-write] %s", message);
    } else {
        snprintf(message, sizeof message,
                 "reading %s is not allowed: model code may read the standard library, its scratch directory %s "
                 "and the paths the host granted",
                 path, scratch);
        PyErr_Format(PyExc_PermissionError, "[sandbox: file-read] %s", message);
    }
    return -1;
}

/// What file descriptor `fd` refers to, from /proc/self/fd. Returns 0 with an absolute path, or
/// -1 for anything that is not a file on disk (pipes, sockets, terminals show as such paths too).
static int descriptor_path(long fd, char out[PATH_MAX]) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
    ssize_t length = readlink(link, out, PATH_MAX - 1);
    if (length <= 0) return -1;
    out[length] = 0;
    return out[0] == '/' ? 0 : -1;
}

static int check_descriptor(rlm_sandbox_policy *policy, long fd, enum access_kind kind, const char *what) {
    char path[PATH_MAX];
    if (fd < 0) return 0;
    if (descriptor_path(fd, path) == 0 && path_allowed(policy, path, kind)) return 0;
    char message[128];
    snprintf(message, sizeof message, "%s on descriptor %ld", what, fd);
    return deny("descriptors", message,
                "model code may use only descriptors of files it opened under its allowed paths "
                "(not the host's standard streams, sockets or pipes)");
}

/// Checks a path argument (str, bytes, os.PathLike or a descriptor). 0: allowed; -1: exception set.
static int check_path_object(rlm_sandbox_policy *policy, PyObject *object, enum access_kind kind, const char *what) {
    if (object == Py_None) return 0;
    if (PyLong_Check(object)) {
        long fd = PyLong_AsLong(object);
        if (fd == -1 && PyErr_Occurred()) return -1;
        return check_descriptor(policy, fd, kind, what);
    }
    PyObject *fspath = PyOS_FSPath(object);
    if (!fspath) return -1;
    PyObject *bytes = NULL;
    if (PyUnicode_Check(fspath)) {
        bytes = PyUnicode_EncodeFSDefault(fspath);
        Py_DECREF(fspath);
        if (!bytes) return -1;
    } else {
        bytes = fspath;
    }
    const char *raw = PyBytes_AsString(bytes);
    if (!raw) {
        Py_DECREF(bytes);
        return -1;
    }
    char resolved[PATH_MAX];
    int result = 0;
    if (strlen(raw) != (size_t)PyBytes_GET_SIZE(bytes) || canonical(raw, resolved) != 0) {
        result = deny("file-read", "this path", "it could not be resolved");
    } else if (!path_allowed(policy, resolved, kind)) {
        result = deny_path(resolved, kind, policy);
    }
    Py_DECREF(bytes);
    return result;
}

static int argument_is_write(PyObject *mode, PyObject *flags) {
    if (flags && PyLong_Check(flags)) {
        long value = PyLong_AsLong(flags);
        if (value == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
        if ((value & O_ACCMODE) != O_RDONLY) return 1;
        if (value & (O_CREAT | O_TRUNC | O_APPEND)) return 1;
#ifdef O_TMPFILE
        if ((value & O_TMPFILE) == O_TMPFILE) return 1;
#endif
    }
    if (mode && PyUnicode_Check(mode)) {
        const char *text = PyUnicode_AsUTF8(mode);
        if (!text) {
            PyErr_Clear();
            return 1;
        }
        if (strpbrk(text, "wax+")) return 1;
    }
    return 0;
}

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
        return deny("native-code", what, "model code may not load foreign-function or interpreter-internal modules");
    }
    // CPython raises a second `import` event with the file name when it loads an extension module.
    if (filename && PyUnicode_Check(filename)) {
        const char *file = PyUnicode_AsUTF8(filename);
        if (!file) return -1;
        char resolved[PATH_MAX];
        if (canonical(file, resolved) == 0 && under(resolved, policy->native_roots, policy->native_root_count)) return 0;
        char what[PATH_MAX + 64];
        snprintf(what, sizeof what, "loading the native extension %s (%s)", name, file);
        return deny("native-code", what, "the host did not allow this extension module");
    }
    return 0;
}

static int starts_with(const char *text, const char *prefix) {
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static PyObject *argument(PyObject *args, Py_ssize_t index) {
    return PyTuple_Check(args) && PyTuple_Size(args) > index ? PyTuple_GET_ITEM(args, index) : Py_None;
}

static int audit_hook(const char *event, PyObject *args, void *user_data) {
    (void)user_data;
    rlm_sandbox_policy *policy = current_policy;
    if (!policy || host_operation) return 0;
    switch (event[0]) {
    case 'b':
        if (strcmp(event, "builtins.input") == 0 || strcmp(event, "builtins.breakpoint") == 0)
            return deny("standard-input", event, "model code may not read the host's standard input");
        break;
    case 'c':
        if (starts_with(event, "ctypes.")) return deny("native-code", event, "model code may not use ctypes");
        if (starts_with(event, "cpython.PyInterpreterState"))
            return deny("introspection", event, "model code may not create interpreters");
        break;
    case 'f':
        if (starts_with(event, "fcntl.")) {
            PyObject *fd = argument(args, 0);
            long value = PyLong_Check(fd) ? PyLong_AsLong(fd) : -1;
            if (value == -1 && PyErr_Occurred()) return -1;
            return check_descriptor(policy, value, ACCESS_WRITE, event);
        }
        break;
    case 'g':
        if (starts_with(event, "gc.get_"))
            return deny("introspection", event, "model code may not walk the interpreter's objects (other REPLs live there)");
        break;
    case 'i':
        if (strcmp(event, "import") == 0) return check_import(policy, args);
        break;
    case 'm':
        if (strcmp(event, "mmap.__new__") == 0) {
            PyObject *fd = argument(args, 0);
            long value = PyLong_Check(fd) ? PyLong_AsLong(fd) : -1;
            if (value == -1 && PyErr_Occurred()) return -1;
            return check_descriptor(policy, value, ACCESS_ANY, event);
        }
        break;
    case 'o':
        if (strcmp(event, "open") == 0) {
            enum access_kind kind = argument_is_write(argument(args, 1), argument(args, 2)) ? ACCESS_WRITE : ACCESS_READ;
            return check_path_object(policy, argument(args, 0), kind, "open");
        }
        if (strcmp(event, "os.system") == 0 || strcmp(event, "os.exec") == 0 || strcmp(event, "os.posix_spawn") == 0 ||
            strcmp(event, "os.spawn") == 0 || strcmp(event, "os.fork") == 0 || strcmp(event, "os.forkpty") == 0 ||
            strcmp(event, "os.startfile") == 0)
            return deny("processes", event, "model code may not start processes");
        if (strcmp(event, "os.kill") == 0 || strcmp(event, "os.killpg") == 0)
            return deny("signals", event, "model code may not send signals");
        if (strcmp(event, "os.chdir") == 0)
            return deny("process-state", event, "the working directory belongs to the host process");
        if (strcmp(event, "os.putenv") == 0 || strcmp(event, "os.unsetenv") == 0)
            return deny("environment", event, "the process environment belongs to the host (os.environ in the REPL is a private copy)");
        if (strcmp(event, "os.link") == 0 || strcmp(event, "os.symlink") == 0)
            return deny("file-write", event, "model code may not create links");
        if (strcmp(event, "os.listdir") == 0 || strcmp(event, "os.scandir") == 0 || strcmp(event, "os.listxattr") == 0) {
            PyObject *path = argument(args, 0);
            if (path == Py_None) path = PyUnicode_FromString(".");
            else Py_INCREF(path);
            if (!path) return -1;
            int result = check_path_object(policy, path, ACCESS_READ, event);
            Py_DECREF(path);
            return result;
        }
        if (strcmp(event, "os.rename") == 0) {
            if (check_path_object(policy, argument(args, 0), ACCESS_WRITE, event) < 0) return -1;
            return check_path_object(policy, argument(args, 1), ACCESS_WRITE, event);
        }
        if (strcmp(event, "os.remove") == 0 || strcmp(event, "os.rmdir") == 0 || strcmp(event, "os.mkdir") == 0 ||
            strcmp(event, "os.truncate") == 0 || strcmp(event, "os.chmod") == 0 || strcmp(event, "os.chown") == 0 ||
            strcmp(event, "os.utime") == 0 || strcmp(event, "os.chflags") == 0 || strcmp(event, "os.lchflags") == 0 ||
            strcmp(event, "os.setxattr") == 0 || strcmp(event, "os.removexattr") == 0 || strcmp(event, "os.lchmod") == 0)
            return check_path_object(policy, argument(args, 0), ACCESS_WRITE, event);
        break;
    case 'p':
        if (strcmp(event, "pty.spawn") == 0) return deny("processes", event, "model code may not start processes");
        break;
    case 'r':
        if (strcmp(event, "resource.setrlimit") == 0 || strcmp(event, "resource.prlimit") == 0)
            return deny("process-state", event, "resource limits belong to the host process");
        break;
    case 's':
        if (starts_with(event, "socket.")) {
            if (policy->flags & RLM_SANDBOX_ALLOW_NETWORK) return 0;
            return deny("network", event, "model code may not open network connections");
        }
        if (strcmp(event, "subprocess.Popen") == 0) return deny("processes", event, "model code may not start processes");
        if (strcmp(event, "sys._current_frames") == 0 || strcmp(event, "sys._current_exceptions") == 0)
            return deny("introspection", event, "model code may not inspect other threads");
        if (strcmp(event, "sys.settrace") == 0 && installing_trace) return 0;
        if (strcmp(event, "sys.settrace") == 0 || strcmp(event, "sys.setprofile") == 0 || strcmp(event, "sys.addaudithook") == 0)
            return deny("introspection", event, "tracing and audit hooks belong to the host");
        if (strcmp(event, "signal.pthread_kill") == 0) return deny("signals", event, "model code may not send signals");
        if (strcmp(event, "shutil.copyfile") == 0 || strcmp(event, "shutil.copymode") == 0 ||
            strcmp(event, "shutil.copystat") == 0 || strcmp(event, "shutil.copytree") == 0 || strcmp(event, "shutil.move") == 0) {
            if (check_path_object(policy, argument(args, 0), strcmp(event, "shutil.move") == 0 ? ACCESS_WRITE : ACCESS_READ, event) < 0)
                return -1;
            return check_path_object(policy, argument(args, 1), ACCESS_WRITE, event);
        }
        if (strcmp(event, "shutil.rmtree") == 0 || strcmp(event, "shutil.chown") == 0)
            return check_path_object(policy, argument(args, 0), ACCESS_WRITE, event);
        if (strcmp(event, "sqlite3.connect") == 0) {
            PyObject *database = argument(args, 0);
            if (PyUnicode_Check(database)) {
                const char *name = PyUnicode_AsUTF8(database);
                if (!name) return -1;
                if (strcmp(name, ":memory:") == 0 || name[0] == 0) return 0;
            }
            return check_path_object(policy, database, ACCESS_WRITE, event);
        }
        if (starts_with(event, "sqlite3.") && strstr(event, "extension"))
            return deny("native-code", event, "model code may not load SQLite extensions");
        break;
    case 't':
        if (strcmp(event, "tempfile.mkstemp") == 0 || strcmp(event, "tempfile.mkdtemp") == 0)
            return check_path_object(policy, argument(args, 0), ACCESS_WRITE, event);
        break;
    case 'w':
        if (strcmp(event, "webbrowser.open") == 0) return deny("processes", event, "model code may not start processes");
        break;
    default:
        break;
    }
    return 0;
}

int rlm_sandbox_install_hook(void) {
    return PySys_AddAuditHook(audit_hook, NULL);
}

// MARK: - Guards

enum guard_mode {
    GUARD_DENY = 0,
    GUARD_FD_READ = 1,
    GUARD_FD_WRITE = 2,
    GUARD_FD_ANY = 3,
    GUARD_MAX_INT = 4,
};

typedef struct {
    PyObject_HEAD
    PyObject *original;
    char *rule;
    char *name;
    char *why;
    int mode;
    long cap;
} Guard;

static void guard_dealloc(Guard *self) {
    Py_XDECREF(self->original);
    free(self->rule);
    free(self->name);
    free(self->why);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *guard_call(Guard *self, PyObject *args, PyObject *kwargs) {
    rlm_sandbox_policy *policy = current_policy;
    if (policy && !host_operation) {
        switch (self->mode) {
        case GUARD_DENY:
            deny(self->rule, self->name, self->why);
            return NULL;
        case GUARD_FD_READ:
        case GUARD_FD_WRITE:
        case GUARD_FD_ANY: {
            PyObject *fd = PyTuple_Size(args) > 0 ? PyTuple_GET_ITEM(args, 0) : NULL;
            if (!fd || !PyLong_Check(fd)) break;  // let the function report its own argument error
            long value = PyLong_AsLong(fd);
            if (value == -1 && PyErr_Occurred()) return NULL;
            enum access_kind kind = self->mode == GUARD_FD_READ ? ACCESS_READ
                : self->mode == GUARD_FD_WRITE ? ACCESS_WRITE : ACCESS_ANY;
            if (value < 0) break;
            if (check_descriptor(policy, value, kind, self->name) < 0) return NULL;
            break;
        }
        case GUARD_MAX_INT: {
            PyObject *number = PyTuple_Size(args) > 0 ? PyTuple_GET_ITEM(args, 0) : NULL;
            if (!number || !PyLong_Check(number)) break;
            int overflow = 0;
            long value = PyLong_AsLongAndOverflow(number, &overflow);
            if (value == -1 && PyErr_Occurred()) return NULL;
            if (overflow || value > self->cap) {
                char why[128];
                snprintf(why, sizeof why, "the most model code may set is %ld", self->cap);
                deny(self->rule, self->name, why);
                return NULL;
            }
            break;
        }
        default:
            break;
        }
    }
    return PyObject_Call(self->original, args, kwargs);
}

static PyObject *guard_repr(Guard *self) {
    return PyUnicode_FromFormat("<sandboxed %s>", self->name);
}

static PyObject *guard_get_name(Guard *self, void *closure) {
    (void)closure;
    const char *dot = strrchr(self->name, '.');
    return PyUnicode_FromString(dot ? dot + 1 : self->name);
}

static PyObject *guard_get_doc(Guard *self, void *closure) {
    (void)closure;
    return PyObject_GetAttrString(self->original, "__doc__");
}

static PyGetSetDef guard_getset[] = {
    {"__name__", (getter)guard_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)guard_get_name, NULL, NULL, NULL},
    {"__doc__", (getter)guard_get_doc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject GuardType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_swift_rlm_sandbox.Guard",
    .tp_basicsize = sizeof(Guard),
    .tp_dealloc = (destructor)guard_dealloc,
    .tp_repr = (reprfunc)guard_repr,
    .tp_call = (ternaryfunc)guard_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_getset = guard_getset,
    .tp_doc = "A function that sandboxed threads may not call, or may call only within limits.",
};

/// guard(original, rule, name, why, mode=0, cap=0)
static PyObject *make_guard(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *original;
    const char *rule, *name, *why;
    int mode = GUARD_DENY;
    long cap = 0;
    if (!PyArg_ParseTuple(args, "Osss|il:guard", &original, &rule, &name, &why, &mode, &cap)) return NULL;
    if (Py_IS_TYPE(original, &GuardType)) return Py_NewRef(original);
    Guard *guard = PyObject_New(Guard, &GuardType);
    if (!guard) return NULL;
    guard->original = Py_NewRef(original);
    guard->rule = strdup(rule);
    guard->name = strdup(name);
    guard->why = strdup(why);
    guard->mode = mode;
    guard->cap = cap;
    if (!guard->rule || !guard->name || !guard->why) {
        Py_DECREF(guard);
        return PyErr_NoMemory();
    }
    return (PyObject *)guard;
}

// MARK: - Threads inherit their creator's policy

static PyObject *original_start_new_thread;

static void policy_capsule_destructor(PyObject *capsule) {
    rlm_sandbox_policy *policy = PyCapsule_GetPointer(capsule, "rlm_sandbox_policy");
    if (policy) rlm_sandbox_policy_release(policy);
}

/// The body of a thread started from a sandboxed thread: `state` is (policy capsule, function, args, kwargs).
static PyObject *thread_entry(PyObject *state, PyObject *unused) {
    (void)unused;
    rlm_sandbox_policy *policy = PyCapsule_GetPointer(PyTuple_GET_ITEM(state, 0), "rlm_sandbox_policy");
    if (!policy) return NULL;
    rlm_sandbox_policy *previous = rlm_sandbox_enter(policy);
    PyObject *kwargs = PyTuple_GET_ITEM(state, 3);
    PyObject *result = PyObject_Call(PyTuple_GET_ITEM(state, 1), PyTuple_GET_ITEM(state, 2), kwargs == Py_None ? NULL : kwargs);
    rlm_sandbox_policy *mine = rlm_sandbox_enter(previous);
    if (previous) rlm_sandbox_policy_release(previous);
    if (mine) rlm_sandbox_policy_release(mine);
    return result;
}

static PyMethodDef thread_entry_def = {"sandboxed_thread", thread_entry, METH_NOARGS, NULL};

/// start_new_thread(function, args, kwargs=None): `_thread.start_new_thread`, whose new thread
/// carries the calling thread's policy.
static PyObject *start_new_thread(PyObject *module, PyObject *args) {
    (void)module;
    if (!original_start_new_thread) {
        PyErr_SetString(PyExc_RuntimeError, "the sandbox's thread support is not installed");
        return NULL;
    }
    rlm_sandbox_policy *policy = current_policy;
    if (!policy) return PyObject_Call(original_start_new_thread, args, NULL);
    PyObject *function, *function_args, *kwargs = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O:start_new_thread", &function, &function_args, &kwargs)) return NULL;
    if (!PyTuple_Check(function_args)) {
        PyErr_SetString(PyExc_TypeError, "2nd arg must be a tuple");
        return NULL;
    }
    rlm_sandbox_policy_retain(policy);
    PyObject *capsule = PyCapsule_New(policy, "rlm_sandbox_policy", policy_capsule_destructor);
    if (!capsule) {
        rlm_sandbox_policy_release(policy);
        return NULL;
    }
    PyObject *state = PyTuple_Pack(4, capsule, function, function_args, kwargs);
    Py_DECREF(capsule);
    if (!state) return NULL;
    PyObject *entry = PyCFunction_New(&thread_entry_def, state);
    Py_DECREF(state);
    if (!entry) return NULL;
    PyObject *result = PyObject_CallFunction(original_start_new_thread, "(O())", entry);
    Py_DECREF(entry);
    return result;
}

/// install_thread_start(original): records `_thread.start_new_thread`, once.
static PyObject *install_thread_start(PyObject *module, PyObject *original) {
    (void)module;
    if (original_start_new_thread) {
        PyErr_SetString(PyExc_RuntimeError, "already installed");
        return NULL;
    }
    original_start_new_thread = Py_NewRef(original);
    Py_RETURN_NONE;
}

// MARK: - Module

static PyObject *active(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(current_policy != NULL && !host_operation);
}

/// scratch(): the calling thread's scratch directory (its first writable root), or None.
static PyObject *scratch(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    rlm_sandbox_policy *policy = current_policy;
    if (!policy || policy->write_count == 0) Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(policy->write_roots[0]);
}

static PyObject *install_collector_guard(PyObject *module, PyObject *gc);
static PyTypeObject CallbacksViewType;

static PyMethodDef module_methods[] = {
    {"active", active, METH_NOARGS, "Whether the calling thread runs under a sandbox policy."},
    {"scratch", scratch, METH_NOARGS, "The calling thread's scratch directory, or None."},
    {"guard", make_guard, METH_VARARGS, "guard(original, rule, name, why, mode=0, cap=0) -> a guarded callable."},
    {"start_new_thread", start_new_thread, METH_VARARGS, "_thread.start_new_thread; the thread inherits the sandbox."},
    {"install_thread_start", install_thread_start, METH_O, "Records the original _thread.start_new_thread (once)."},
    {"install_collector_guard", install_collector_guard, METH_O, "Runs the cyclic collector under the finalizer policy (once)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_swift_rlm_sandbox", "The in-process sandbox of swift-rlm.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyObject *rlm_sandbox_make_module(void) {
    if (PyType_Ready(&GuardType) < 0 || PyType_Ready(&CallbacksViewType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_definition);
    if (!module) return NULL;
    if (PyModule_AddIntConstant(module, "DENY", GUARD_DENY) < 0 ||
        PyModule_AddIntConstant(module, "FD_READ", GUARD_FD_READ) < 0 ||
        PyModule_AddIntConstant(module, "FD_WRITE", GUARD_FD_WRITE) < 0 ||
        PyModule_AddIntConstant(module, "FD_ANY", GUARD_FD_ANY) < 0 ||
        PyModule_AddIntConstant(module, "MAX_INT", GUARD_MAX_INT) < 0 ||
        PyModule_AddObjectRef(module, "Guard", (PyObject *)&GuardType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    PyObject *modules = PyImport_GetModuleDict();
    if (PyDict_SetItemString(modules, "_swift_rlm_sandbox", module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

// MARK: - Finalizers

// A finalizer (`__del__`, a weakref callback, a generator's `finally`) runs on whichever thread
// drops the object's last reference or runs the cyclic collector, under that thread's policy:
// an object made by sandboxed code and collected by an unsandboxed job, or by the bridge's own
// threads, would run model code with the host's authority. So, while any sandbox policy exists,
// every collection of the cyclic collector runs under the finalizer policy (nothing may be read,
// written, imported from disk, started or connected), entered by a `gc.callbacks` entry that
// model code cannot reach: `gc.callbacks` is replaced by a view (CallbacksView) that only
// unsandboxed threads may use. The bridge's interrupter thread runs under the same policy, and
// objects a sandboxed namespace drops without the GIL are released under its own policy.
static rlm_sandbox_policy *finalizer_policy;
static _Thread_local rlm_sandbox_policy *collector_saved_policy;
static _Thread_local int collector_saved_host_operation;
static _Thread_local int collector_switched;

rlm_sandbox_policy *rlm_sandbox_finalizer_policy(void) {
    return finalizer_policy;
}

/// The `gc.callbacks` entry: ("start" | "stop", info).
static PyObject *collector_phase(PyObject *unused, PyObject *args) {
    (void)unused;
    PyObject *phase = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : NULL;
    if (!phase || !PyUnicode_Check(phase)) Py_RETURN_NONE;
    if (PyUnicode_CompareWithASCIIString(phase, "start") == 0) {
        long others = atomic_load_explicit(&live_policies, memory_order_relaxed) - (finalizer_policy ? 1 : 0);
        if (!collector_switched && finalizer_policy && others > 0) {
            collector_saved_policy = rlm_sandbox_enter(finalizer_policy);
            collector_saved_host_operation = host_operation;
            host_operation = 0;
            collector_switched = 1;
        }
    } else if (PyUnicode_CompareWithASCIIString(phase, "stop") == 0 && collector_switched) {
        rlm_sandbox_policy *saved = collector_saved_policy;
        rlm_sandbox_policy *mine = rlm_sandbox_enter(saved);
        if (mine) rlm_sandbox_policy_release(mine);
        if (saved) rlm_sandbox_policy_release(saved);
        host_operation = collector_saved_host_operation;
        collector_saved_policy = NULL;
        collector_switched = 0;
    }
    Py_RETURN_NONE;
}

static PyMethodDef collector_phase_def = {"swift_rlm_collector_phase", collector_phase, METH_VARARGS, NULL};

// `gc.callbacks` as sandboxed threads see it: nothing. Unsandboxed threads use the real list
// through it (attributes, len, iteration, indexing, `in`), which the collector reads directly.
typedef struct {
    PyObject_HEAD
    PyObject *list;
} CallbacksView;

static int view_denied(void) {
    if (!current_policy || host_operation) return 0;
    deny("introspection", "gc.callbacks", "the collector's callbacks belong to the host");
    return 1;
}

static void view_dealloc(CallbacksView *self) {
    Py_XDECREF(self->list);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *view_getattro(CallbacksView *self, PyObject *name) {
    if (view_denied()) return NULL;
    return PyObject_GetAttr(self->list, name);
}

static Py_ssize_t view_length(CallbacksView *self) {
    return view_denied() ? -1 : PyList_Size(self->list);
}

static PyObject *view_subscript(CallbacksView *self, PyObject *key) {
    return view_denied() ? NULL : PyObject_GetItem(self->list, key);
}

static int view_assign(CallbacksView *self, PyObject *key, PyObject *value) {
    if (view_denied()) return -1;
    return value ? PyObject_SetItem(self->list, key, value) : PyObject_DelItem(self->list, key);
}

static int view_contains(CallbacksView *self, PyObject *item) {
    return view_denied() ? -1 : PySequence_Contains(self->list, item);
}

static PyObject *view_iter(CallbacksView *self) {
    return view_denied() ? NULL : PyObject_GetIter(self->list);
}

static PyObject *view_repr(CallbacksView *self) {
    return view_denied() ? NULL : PyObject_Repr(self->list);
}

static PyMappingMethods view_mapping = {
    .mp_length = (lenfunc)view_length,
    .mp_subscript = (binaryfunc)view_subscript,
    .mp_ass_subscript = (objobjargproc)view_assign,
};

static PySequenceMethods view_sequence = {
    .sq_length = (lenfunc)view_length,
    .sq_contains = (objobjproc)view_contains,
};

static PyTypeObject CallbacksViewType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_swift_rlm_sandbox.CallbacksView",
    .tp_basicsize = sizeof(CallbacksView),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_repr = (reprfunc)view_repr,
    .tp_as_sequence = &view_sequence,
    .tp_as_mapping = &view_mapping,
    .tp_getattro = (getattrofunc)view_getattro,
    .tp_iter = (getiterfunc)view_iter,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "gc.callbacks, for threads without a sandbox policy.",
};

/// install_collector_guard(gc): adds the collector's policy switch to `gc.callbacks` and puts a
/// view in its place (once).
static PyObject *install_collector_guard(PyObject *module, PyObject *gc) {
    (void)module;
    if (finalizer_policy) {
        PyErr_SetString(PyExc_RuntimeError, "already installed");
        return NULL;
    }
    PyObject *list = PyObject_GetAttrString(gc, "callbacks");
    if (!list) return NULL;
    if (!PyList_Check(list)) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
        return NULL;
    }
    PyObject *hook = PyCFunction_New(&collector_phase_def, NULL);
    CallbacksView *view = hook ? PyObject_New(CallbacksView, &CallbacksViewType) : NULL;
    if (!view || PyList_Append(list, hook) < 0) {
        Py_XDECREF(hook);
        Py_XDECREF(view);
        Py_DECREF(list);
        return NULL;
    }
    Py_DECREF(hook);
    view->list = list;
    if (PyObject_SetAttrString(gc, "callbacks", (PyObject *)view) < 0) {
        Py_DECREF(view);
        return NULL;
    }
    Py_DECREF(view);
    finalizer_policy = rlm_sandbox_policy_create(NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0);
    if (!finalizer_policy) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

// MARK: - Stopping code

// Directories of library code (the standard library, site-packages): the stop trace never raises
// in their frames, nor in frozen modules (importlib). Raising there on every line would also
// raise inside their `finally` clauses and `__exit__` methods, which release locks: a stop that
// landed in the middle of an import left the import lock held, and every later import in the
// process waited for it forever. Model code's own frames still get the exception on each line.
static PyObject *library_paths;

int rlm_sandbox_set_library_paths(PyObject *paths) {
    PyObject *tuple = PySequence_Tuple(paths);
    if (!tuple) return -1;
    Py_XSETREF(library_paths, tuple);
    return 0;
}

static int is_library_frame(PyFrameObject *frame) {
    PyCodeObject *code = PyFrame_GetCode(frame);
    PyObject *filename = code->co_filename;
    int library = 0;
    if (PyUnicode_Check(filename)) {
        static PyObject *frozen;
        if (!frozen) frozen = PyUnicode_InternFromString("<frozen ");
        if (frozen && PyUnicode_Tailmatch(filename, frozen, 0, PY_SSIZE_T_MAX, -1) == 1) library = 1;
        Py_ssize_t count = library_paths ? PyTuple_GET_SIZE(library_paths) : 0;
        for (Py_ssize_t index = 0; !library && index < count; index++) {
            if (PyUnicode_Tailmatch(filename, PyTuple_GET_ITEM(library_paths, index), 0, PY_SSIZE_T_MAX, -1) == 1) {
                library = 1;
            }
        }
    }
    Py_DECREF(code);
    return library;
}

// Executions and their stops. Every thread that runs executions has a slot: its thread state and
// the id of the execution running on it (0 between executions). A stop names the slot and the
// execution it is meant for, and acts only while that execution still runs there: a thread
// *state* is targeted, never a thread id (on CPython 3.11 a thread that is being started has a
// state at the head of the list with its parent's id, and a failed start leaves such a state
// behind for good), and never an execution that has since ended on the same thread.
//
// Every field but `started` and `started_at` is read and written with the GIL held, which
// orders them. A slot is never freed: a stop round may still name it after its thread moved on
// (the bridge's pool threads live as long as the process).
struct rlm_stop_slot {
    PyThreadState *tstate;
    uint64_t execution;
    /// The execution a stop was asked for, and the exception it raises.
    uint64_t stop;
    PyObject *stop_type;
    /// Whether to record when `execution` runs its first line.
    int watch_start;
    /// The execution whose first line ran, and when (rlm_sandbox_now): read without the GIL.
    _Atomic uint64_t started;
    _Atomic uint64_t started_at;
};

static _Thread_local rlm_stop_slot *own_slot;
static _Atomic uint64_t last_execution;

/// Declared in CPython's internal pycore_ceval.h and exported by libpython 3.11 and 3.12: raises
/// the interpreter's "asynchronous exception pending" flag, the second half of what
/// PyThreadState_SetAsyncExc does once it has found a thread by id.
extern void _PyEval_SignalAsyncExc(PyInterpreterState *interp);

uint64_t rlm_sandbox_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int control_trace(PyObject *unused, PyFrameObject *frame, int what, PyObject *arg);

/// Installs (or, with NULL, removes) the control trace on `target` (GIL held). This can run
/// Python code (audit hooks), so the GIL may change hands inside.
static void set_control_trace(PyThreadState *target, Py_tracefunc function) {
    int saved = installing_trace;
    installing_trace = 1;
    if (_PyEval_SetTrace(target, function, NULL) < 0) PyErr_Clear();
    installing_trace = saved;
}

static void mark_started(rlm_stop_slot *slot) {
    slot->watch_start = 0;
    atomic_store_explicit(&slot->started_at, rlm_sandbox_now(), memory_order_relaxed);
    atomic_store_explicit(&slot->started, slot->execution, memory_order_release);
}

// The trace function of a thread that runs an execution: it records the execution's first line
// (its deadline counts from there, not from a wait for the GIL before it), and, once a stop was
// asked for that execution, raises the stop on every line and call of model code. It never
// raises in library code, and removes itself once it has nothing left to do, so a trace left
// behind by a stop round that raced with the end of its execution never touches the next one.
static int control_trace(PyObject *unused, PyFrameObject *frame, int what, PyObject *arg) {
    (void)unused;
    (void)arg;
    rlm_stop_slot *slot = own_slot;
    if (slot && slot->execution != 0) {
        if (slot->stop == slot->execution) {
            if ((what == PyTrace_LINE || what == PyTrace_CALL) && !is_library_frame(frame)) {
                PyErr_SetNone(slot->stop_type);
                return -1;
            }
            return 0;
        }
        if (slot->watch_start) {
            if (what != PyTrace_LINE) return 0;
            mark_started(slot);
        }
    }
    set_control_trace(PyThreadState_Get(), NULL);
    return 0;
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

rlm_stop_slot *_Nullable rlm_sandbox_begin_execution(int watch_start, uint64_t *execution) {
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
    if (watch_start) {
        set_control_trace(slot->tstate, control_trace);
        // Without the trace the first line would go unseen, and the deadline with it.
        if (slot->tstate->c_tracefunc != control_trace && slot->watch_start) mark_started(slot);
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
    // First: from here on no stop round acts on this thread for the execution that ended.
    slot->execution = 0;
    slot->stop = 0;
    slot->watch_start = 0;
    PyThreadState *state = PyThreadState_Get();
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (state->c_tracefunc == control_trace) set_control_trace(state, NULL);
    if (state->async_exc) {
        // An injected exception the execution ended before taking. Clearing it with
        // PyThreadState_SetAsyncExc(id, NULL) would raise the interpreter's "pending" flag with
        // nobody left to lower it: every thread would then stop for pending work at each check,
        // and a traced thread would spin at the entry of its next function. Letting the eval loop
        // take it lowers the flag.
        take_pending_exception();
        Py_CLEAR(state->async_exc);
    }
    PyErr_Restore(type, value, traceback);
}

int rlm_sandbox_stop(rlm_stop_slot *slot, uint64_t execution, PyObject *exception_type, int inject) {
    if (slot->execution != execution) return 0;
    PyThreadState *target = slot->tstate;
    if (slot->stop != execution) {
        slot->stop = execution;
        Py_XSETREF(slot->stop_type, Py_NewRef(exception_type));
    }
    if (target->c_tracefunc != control_trace) set_control_trace(target, control_trace);
    if (!inject || slot->execution != execution) return slot->execution == execution;
    // The trace alone cannot reach a tight loop (`while True: pass` never re-reads the tracing
    // flag), so an asynchronous exception goes in too, but only while the thread's innermost
    // frame is model code. The thread raises it where it resumes in that frame, or at the entry
    // of a function a C call makes (before that function has taken any lock). Raised in the
    // middle of library code, it could land between `_imp.acquire_lock()` and the `try` that
    // releases it, and a thread that then ended would hold the import lock forever. While the
    // thread is in library code, a later round tries again.
    PyFrameObject *frame = PyThreadState_GetFrame(target);  // may allocate, and so run the GC
    int model_code = frame && !is_library_frame(frame);
    Py_XDECREF(frame);
    // Nothing from this check to the write may release the GIL: the execution checked is the
    // one that gets the exception.
    if (slot->execution != execution) return 0;
    if (model_code && !target->async_exc) {
        target->async_exc = Py_NewRef(exception_type);
        _PyEval_SignalAsyncExc(target->interp);
    }
    return 1;
}

int rlm_sandbox_withdraw_stop(rlm_stop_slot *slot, uint64_t execution) {
    if (slot->execution != execution || !slot->tstate->async_exc) return 0;
    // Not taken since the last round: the thread is blocked outside the bytecode loop (a C call,
    // a lock) or starved of the GIL. A pending exception keeps the interpreter's "pending" flag
    // raised for every thread, and a traced thread spins at the entry of each function while it
    // is raised, so take it back (the caller lowers the flag).
    Py_CLEAR(slot->tstate->async_exc);
    return 1;
}

void rlm_sandbox_lower_pending_flag(PyObject *exception_type) {
    // CPython lowers the interpreter's flag only when a thread takes its own pending exception:
    // give this thread one and take it.
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyThreadState *state = PyThreadState_Get();
    Py_XSETREF(state->async_exc, Py_NewRef(exception_type));
    _PyEval_SignalAsyncExc(state->interp);
    take_pending_exception();
    Py_CLEAR(state->async_exc);
    PyErr_Restore(type, value, traceback);
}
