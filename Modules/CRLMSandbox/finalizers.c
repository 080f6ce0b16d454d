// Finalizer confinement: the cyclic collector runs under the finalizer policy while any other
// policy exists, and `gc.callbacks` is out of model code's reach.
#include "internal.h"

// A finalizer (`__del__`, a weakref callback, a generator's `finally`) runs on whichever thread
// drops the object's last reference or runs the cyclic collector, under that thread's policy:
// an object made by sandboxed code and collected by an unsandboxed job, or by the bridge's own
// threads, would run model code with the host's authority. So, while any sandbox policy exists,
// every collection of the cyclic collector runs under the finalizer policy (nothing may be read,
// written, imported from disk, started or connected), entered by a `gc.callbacks` entry that
// model code cannot reach: `gc.callbacks` is replaced by a view (CallbacksView) that only
// unsandboxed threads may use. The bridge's interrupter thread runs under the same policy, and
// objects a sandboxed namespace drops without the GIL are released under its own policy.
//
// The same callback tells the stop machinery that a collection runs on the thread (stop.c): the
// finalizers it runs may be any namespace's, and a stop meant for the thread's execution never
// raises in them.
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
        rlm_stop_collection_began();
        long others = atomic_load_explicit(&rlm_live_policies, memory_order_relaxed) - (finalizer_policy ? 1 : 0);
        if (!collector_switched && finalizer_policy && others > 0) {
            collector_saved_policy = rlm_sandbox_enter(finalizer_policy);
            collector_saved_host_operation = rlm_host_operation;
            rlm_host_operation = 0;
            collector_switched = 1;
        }
    } else if (PyUnicode_CompareWithASCIIString(phase, "stop") == 0) {
        rlm_stop_collection_ended();
        if (!collector_switched) Py_RETURN_NONE;
        rlm_sandbox_policy *saved = collector_saved_policy;
        rlm_sandbox_policy *mine = rlm_sandbox_enter(saved);
        if (mine) rlm_sandbox_policy_release(mine);
        if (saved) rlm_sandbox_policy_release(saved);
        rlm_host_operation = collector_saved_host_operation;
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
    if (!rlm_current_policy || rlm_host_operation) return 0;
    rlm_deny("introspection", "gc.callbacks", "the collector's callbacks belong to the host");
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

PyTypeObject rlm_callbacks_view_type = {
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
PyObject *rlm_install_collector_guard(PyObject *module, PyObject *gc) {
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
    CallbacksView *view = hook ? PyObject_New(CallbacksView, &rlm_callbacks_view_type) : NULL;
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
