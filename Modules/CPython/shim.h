// Thin C layer over the CPython C API for Swift.
//
// Only what Swift cannot see on its own lives here: macros turned into
// static-inline functions and the process-global exception objects turned into
// getters (Swift 6 treats imported mutable globals as not concurrency-safe).
#ifndef SWIFT_RLM_CPYTHON_SHIM_H
#define SWIFT_RLM_CPYTHON_SHIM_H

// Must come before Python.h: otherwise a clean build fails with an `fd_set`
// module conflict between Glibc and Dispatch.
#include <sys/select.h>

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <pythread.h>

static inline PyObject *rlm_none(void) { return Py_None; }
static inline PyObject *rlm_true(void) { return Py_True; }
static inline PyObject *rlm_false(void) { return Py_False; }

static inline int rlm_is_unicode(PyObject *o) { return PyUnicode_Check(o); }
static inline int rlm_is_bytes(PyObject *o) { return PyBytes_Check(o); }
static inline int rlm_is_bytearray(PyObject *o) { return PyByteArray_Check(o); }
static inline int rlm_is_long(PyObject *o) { return PyLong_Check(o); }
static inline int rlm_is_bool(PyObject *o) { return PyBool_Check(o); }
static inline int rlm_is_float(PyObject *o) { return PyFloat_Check(o); }
static inline int rlm_is_list(PyObject *o) { return PyList_Check(o); }
static inline int rlm_is_tuple(PyObject *o) { return PyTuple_Check(o); }
static inline int rlm_is_dict(PyObject *o) { return PyDict_Check(o); }
static inline int rlm_is_anyset(PyObject *o) { return PyAnySet_Check(o); }

static inline void rlm_incref(PyObject *o) { Py_IncRef(o); }
static inline void rlm_decref(PyObject *o) { Py_DecRef(o); }
static inline Py_ssize_t rlm_refcount(PyObject *o) { return Py_REFCNT(o); }

/// Writable buffer of a freshly created compact ASCII string (PyUnicode_New with maxchar 127).
static inline void *rlm_unicode_data(PyObject *o) { return PyUnicode_DATA(o); }
static inline int rlm_unicode_is_ascii(PyObject *o) { return PyUnicode_IS_ASCII(o); }
static inline Py_ssize_t rlm_unicode_length(PyObject *o) { return PyUnicode_GET_LENGTH(o); }

/// Stolen-reference list/tuple setters (macros in CPython).
static inline void rlm_list_set(PyObject *list, Py_ssize_t i, PyObject *item) { PyList_SET_ITEM(list, i, item); }
static inline void rlm_tuple_set(PyObject *tuple, Py_ssize_t i, PyObject *item) { PyTuple_SET_ITEM(tuple, i, item); }

static inline const char *rlm_type_name(PyObject *o) { return Py_TYPE(o)->tp_name; }

/// Whether the calling thread holds the GIL. Unlike PyGILState_Check(), which answers 1 for every
/// thread once any sub-interpreter has been created, it compares the thread state that
/// holds the GIL with the calling thread's own.
static inline int rlm_holds_gil(void) {
    PyThreadState *mine = PyGILState_GetThisThreadState();
    return mine != NULL && mine == _PyThreadState_UncheckedGet();
}

/// The calling thread's current `contextvars.Context` (borrowed; NULL before any was made). GIL held.
static inline PyObject *rlm_current_context(void) { return PyThreadState_Get()->context; }

static inline PyObject *rlm_exc_base_exception(void) { return PyExc_BaseException; }
static inline PyObject *rlm_exc_runtime_error(void) { return PyExc_RuntimeError; }
static inline PyObject *rlm_exc_type_error(void) { return PyExc_TypeError; }
static inline PyObject *rlm_exc_value_error(void) { return PyExc_ValueError; }
static inline PyObject *rlm_exc_overflow_error(void) { return PyExc_OverflowError; }
static inline PyObject *rlm_exc_key_error(void) { return PyExc_KeyError; }
static inline PyObject *rlm_exc_timeout_error(void) { return PyExc_TimeoutError; }

/// Signature of a METH_VARARGS | METH_KEYWORDS function.
typedef PyObject *(*rlm_cfunction_with_keywords)(PyObject *self, PyObject *args, PyObject *kwargs);

/// Builds a method definition for a keywords-taking C function; the strings must outlive it.
static inline PyMethodDef rlm_method_def(const char *name, rlm_cfunction_with_keywords fn, const char *doc) {
    PyMethodDef def;
    def.ml_name = name;
    def.ml_meth = (PyCFunction)(void (*)(void))fn;
    def.ml_flags = METH_VARARGS | METH_KEYWORDS;
    def.ml_doc = doc;
    return def;
}

#endif
