// Policies (what a sandboxed thread may do), the calling thread's policy, and the path and
// descriptor checks the audit hook and the guards apply. See docs/security.md.
//
// Model code runs on threads that carry a policy (a thread-local pointer). The audit hook
// (audit.c) and the guards (guards.c) read it; a thread without one is allowed everything.
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Thread_local rlm_sandbox_policy *rlm_current_policy;
_Atomic long rlm_live_policies;
_Thread_local int rlm_host_operation;
_Thread_local int rlm_installing_trace;

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
    atomic_fetch_add_explicit(&rlm_live_policies, 1, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(&rlm_live_policies, 1, memory_order_relaxed);
    free_strings(policy->read_roots, policy->read_count);
    free_strings(policy->write_roots, policy->write_count);
    free_strings(policy->native_roots, policy->native_root_count);
    free_strings(policy->native_modules, policy->native_module_count);
    free(policy);
}

rlm_sandbox_policy *rlm_sandbox_enter(rlm_sandbox_policy *policy) {
    rlm_sandbox_policy *previous = rlm_current_policy;
    if (policy) rlm_sandbox_policy_retain(policy);
    rlm_current_policy = policy;
    return previous;
}

// MARK: - Denials

/// Raises PermissionError("[sandbox: RULE] WHAT is not allowed: WHY") and returns -1.
int rlm_deny(const char *rule, const char *what, const char *why) {
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
int rlm_canonical_path(const char *path, char out[PATH_MAX]) {
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

int rlm_path_under(const char *path, char *const *roots, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const char *root = roots[i];
        size_t length = strlen(root);
        if (strcmp(root, "/") == 0) return 1;
        if (strncmp(path, root, length) == 0 && (path[length] == 0 || path[length] == '/')) return 1;
    }
    return 0;
}


static int path_allowed(rlm_sandbox_policy *policy, const char *canonical_path, enum rlm_access_kind kind) {
    int writable = rlm_path_under(canonical_path, policy->write_roots, policy->write_count);
    if (kind == RLM_ACCESS_WRITE) return writable;
    return writable || rlm_path_under(canonical_path, policy->read_roots, policy->read_count);
}

static int deny_path(const char *path, enum rlm_access_kind kind, rlm_sandbox_policy *policy) {
    char message[PATH_MAX + 256];
    const char *scratch = policy->write_count > 0 ? policy->write_roots[0] : "(none)";
    if (kind == RLM_ACCESS_WRITE) {
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

int rlm_check_descriptor(rlm_sandbox_policy *policy, long fd, enum rlm_access_kind kind, const char *what) {
    char path[PATH_MAX];
    if (fd < 0) return 0;
    if (descriptor_path(fd, path) == 0 && path_allowed(policy, path, kind)) return 0;
    char message[128];
    snprintf(message, sizeof message, "%s on descriptor %ld", what, fd);
    return rlm_deny("descriptors", message,
                "model code may use only descriptors of files it opened under its allowed paths "
                "(not the host's standard streams, sockets or pipes)");
}

/// Checks a path argument (str, bytes, os.PathLike or a descriptor). 0: allowed; -1: exception set.
int rlm_check_path_object(rlm_sandbox_policy *policy, PyObject *object, enum rlm_access_kind kind, const char *what) {
    if (object == Py_None) return 0;
    if (PyLong_Check(object)) {
        long fd = PyLong_AsLong(object);
        if (fd == -1 && PyErr_Occurred()) return -1;
        return rlm_check_descriptor(policy, fd, kind, what);
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
    if (strlen(raw) != (size_t)PyBytes_GET_SIZE(bytes) || rlm_canonical_path(raw, resolved) != 0) {
        result = rlm_deny("file-read", "this path", "it could not be resolved");
    } else if (!path_allowed(policy, resolved, kind)) {
        result = deny_path(resolved, kind, policy);
    }
    Py_DECREF(bytes);
    return result;
}

int rlm_argument_is_write(PyObject *mode, PyObject *flags) {
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
