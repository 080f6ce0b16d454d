// Guarded functions, threads that inherit their creator's policy, and the `_swift_rlm_sandbox`
// module that sandbox.py uses to put them in place.
//
// Operations CPython does not audit (os._exit, os.close, signal.signal, ...) are replaced in
// their modules by guard objects (`Guard` below) whose wrapped function Python code cannot reach.
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    rlm_sandbox_policy *policy = rlm_current_policy;
    if (policy && !rlm_host_operation) {
        switch (self->mode) {
        case GUARD_DENY:
            rlm_deny(self->rule, self->name, self->why);
            return NULL;
        case GUARD_FD_READ:
        case GUARD_FD_WRITE:
        case GUARD_FD_ANY: {
            PyObject *fd = PyTuple_Size(args) > 0 ? PyTuple_GET_ITEM(args, 0) : NULL;
            if (!fd || !PyLong_Check(fd)) break;  // let the function report its own argument error
            long value = PyLong_AsLong(fd);
            if (value == -1 && PyErr_Occurred()) return NULL;
            enum rlm_access_kind kind = self->mode == GUARD_FD_READ ? RLM_ACCESS_READ
                : self->mode == GUARD_FD_WRITE ? RLM_ACCESS_WRITE : RLM_ACCESS_ANY;
            if (value < 0) break;
            if (rlm_check_descriptor(policy, value, kind, self->name) < 0) return NULL;
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
                rlm_deny(self->rule, self->name, why);
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

/// A callable that runs `function(*function_args, **kwargs)` under `policy` (retained), on the
/// thread that calls it; NULL with an exception set.
static PyObject *sandboxed_entry(rlm_sandbox_policy *policy, PyObject *function, PyObject *function_args, PyObject *kwargs) {
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
    return entry;
}

static PyObject *not_installed(void) {
    PyErr_SetString(PyExc_RuntimeError, "the sandbox's thread support is not installed");
    return NULL;
}

/// start_new_thread(function, args, kwargs=None): `_thread.start_new_thread`, whose new thread
/// carries the calling thread's policy.
static PyObject *start_new_thread(PyObject *module, PyObject *args) {
    (void)module;
    if (!original_start_new_thread) return not_installed();
    rlm_sandbox_policy *policy = rlm_current_policy;
    if (!policy) return PyObject_Call(original_start_new_thread, args, NULL);
    PyObject *function, *function_args, *kwargs = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O:start_new_thread", &function, &function_args, &kwargs)) return NULL;
    if (!PyTuple_Check(function_args)) {
        PyErr_SetString(PyExc_TypeError, "2nd arg must be a tuple");
        return NULL;
    }
    PyObject *entry = sandboxed_entry(policy, function, function_args, kwargs);
    if (!entry) return NULL;
    PyObject *result = PyObject_CallFunction(original_start_new_thread, "(O())", entry);
    Py_DECREF(entry);
    return result;
}

/// Records `original` in `*slot`, once.
static PyObject *record_original(PyObject **slot, PyObject *original) {
    if (*slot) {
        PyErr_SetString(PyExc_RuntimeError, "already installed");
        return NULL;
    }
    *slot = Py_NewRef(original);
    Py_RETURN_NONE;
}

/// install_thread_start(original): records `_thread.start_new_thread`, once.
static PyObject *install_thread_start(PyObject *module, PyObject *original) {
    (void)module;
    return record_original(&original_start_new_thread, original);
}

// CPython 3.13's `threading` starts its threads with `_thread.start_joinable_thread(function,
// handle=None, daemon=True)`, not start_new_thread: a thread a sandboxed `threading.Thread`
// started ran with no policy until this wrapper carried it over.
static PyObject *original_start_joinable_thread;

/// start_joinable_thread(function, handle=None, daemon=True): `_thread.start_joinable_thread`,
/// whose new thread carries the calling thread's policy.
static PyObject *start_joinable_thread(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    if (!original_start_joinable_thread) return not_installed();
    rlm_sandbox_policy *policy = rlm_current_policy;
    if (!policy) return PyObject_Call(original_start_joinable_thread, args, kwargs);
    if (PyTuple_GET_SIZE(args) < 1 || (kwargs && PyDict_GetItemString(kwargs, "function"))) {
        PyErr_SetString(PyExc_TypeError, "start_joinable_thread: pass the function as the first positional argument");
        return NULL;
    }
    PyObject *no_arguments = PyTuple_New(0);
    if (!no_arguments) return NULL;
    PyObject *entry = sandboxed_entry(policy, PyTuple_GET_ITEM(args, 0), no_arguments, Py_None);
    Py_DECREF(no_arguments);
    if (!entry) return NULL;
    PyObject *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    PyObject *entry_tuple = rest ? PyTuple_Pack(1, entry) : NULL;
    PyObject *arguments = entry_tuple ? PySequence_Concat(entry_tuple, rest) : NULL;
    Py_XDECREF(entry_tuple);
    Py_XDECREF(rest);
    Py_DECREF(entry);
    if (!arguments) return NULL;
    PyObject *result = PyObject_Call(original_start_joinable_thread, arguments, kwargs);
    Py_DECREF(arguments);
    return result;
}

/// install_joinable_thread_start(original): records `_thread.start_joinable_thread`, once.
static PyObject *install_joinable_thread_start(PyObject *module, PyObject *original) {
    (void)module;
    return record_original(&original_start_joinable_thread, original);
}

// MARK: - Module

static PyObject *active(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(rlm_current_policy != NULL && !rlm_host_operation);
}

/// scratch(): the calling thread's scratch directory (its first writable root), or None.
static PyObject *scratch(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    rlm_sandbox_policy *policy = rlm_current_policy;
    if (!policy || policy->write_count == 0) Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(policy->write_roots[0]);
}


static PyMethodDef module_methods[] = {
    {"active", active, METH_NOARGS, "Whether the calling thread runs under a sandbox policy."},
    {"scratch", scratch, METH_NOARGS, "The calling thread's scratch directory, or None."},
    {"guard", make_guard, METH_VARARGS, "guard(original, rule, name, why, mode=0, cap=0) -> a guarded callable."},
    {"start_new_thread", start_new_thread, METH_VARARGS, "_thread.start_new_thread; the thread inherits the sandbox."},
    {"install_thread_start", install_thread_start, METH_O, "Records the original _thread.start_new_thread (once)."},
    {"start_joinable_thread", (PyCFunction)(void (*)(void))start_joinable_thread, METH_VARARGS | METH_KEYWORDS,
     "_thread.start_joinable_thread (CPython 3.13+); the thread inherits the sandbox."},
    {"install_joinable_thread_start", install_joinable_thread_start, METH_O,
     "Records the original _thread.start_joinable_thread (once)."},
    {"install_collector_guard", rlm_install_collector_guard, METH_O, "Runs the cyclic collector under the finalizer policy (once)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_swift_rlm_sandbox", "The in-process sandbox of swift-rlm.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyObject *rlm_sandbox_make_module(void) {
    if (PyType_Ready(&GuardType) < 0 || PyType_Ready(&rlm_callbacks_view_type) < 0) return NULL;
    // Before sandbox.py guards what model code may not call, sys.monitoring among it.
    if (rlm_compat_stop_install() < 0) return NULL;
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
