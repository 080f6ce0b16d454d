"""The `_swift_rlm` support module, installed once when the interpreter starts.

Per-thread output capture with a bounded head-and-tail buffer, cell compilation (the last
expression is echoed, as in a REPL, and the source is registered with `linecache` so tracebacks
show the lines), traceback formatting, an interruptible `time.sleep`, and the
`ExecutionInterrupted` exception used to stop runaway code.

Embedded in the PythonRuntime module at build time (SwiftPM `embedInCode`); run by Bootstrap.swift
with the builtins as globals, before any other Python code.
"""
import sys, threading, ast, linecache, traceback, io, builtins, time as _time
from _thread import get_ident as _get_ident
import _swift_rlm_sandbox

# The builtins as the interpreter started: sandboxed namespaces get copies of these, and a
# sandboxed cell that rebinds a name in the shared `builtins` module has it put back afterwards.
pristine_builtins = dict(builtins.__dict__)


def _restore_builtins():
    current = builtins.__dict__
    for name, value in pristine_builtins.items():
        if current.get(name, pristine_builtins) is not value:
            current[name] = value

class ExecutionInterrupted(BaseException):
    """Raised inside Python code that was stopped by its deadline or by cancellation.

    It derives from BaseException so that `except Exception:` does not swallow it."""

_captures = {}

class _Capture:
    __slots__ = ("limit", "half", "head", "head_len", "tail", "tail_len", "total")

    def __init__(self, limit):
        self.limit = limit
        self.half = None if limit is None else limit // 2
        self.head = []
        self.head_len = 0
        self.tail = []
        self.tail_len = 0
        self.total = 0

    def write(self, s):
        n = len(s)
        self.total += n
        if self.limit is None:
            self.head.append(s)
            return
        room = self.half - self.head_len
        if room > 0:
            part = s[:room]
            self.head.append(part)
            self.head_len += len(part)
            s = s[room:]
            if not s:
                return
        self.tail.append(s)
        self.tail_len += len(s)
        if self.tail_len > 2 * self.limit + 65536:
            kept = "".join(self.tail)[-self.limit:]
            self.tail = [kept]
            self.tail_len = len(kept)

    def value(self):
        head = "".join(self.head)
        tail = "".join(self.tail)
        if self.limit is None or self.total <= self.limit:
            return head + tail, 0
        keep = self.limit - len(head)
        tail = tail[-keep:] if keep > 0 else ""
        omitted = self.total - len(head) - len(tail)
        return head + "\n... [" + str(omitted) + " characters truncated] ...\n" + tail, omitted


class _Router(io.TextIOBase):
    """sys.stdout / sys.stderr: writes go to the capture of the writing thread.

    Output from a thread outside any capture goes to the process's standard error, so that the
    host's standard output is never polluted by Python code."""

    def __init__(self, index, name):
        self._index = index
        self._name = name

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not " + type(s).__name__)
        pair = _current_capture()
        if pair is None:
            fallback = sys.__stderr__
            if fallback is not None:
                fallback.write(s)
            return len(s)
        pair[self._index].write(s)
        return len(s)

    def writable(self):
        return True

    def flush(self):
        pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"

    @property
    def name(self):
        return self._name


def begin_capture(limit):
    _captures[_get_ident()] = (_Capture(limit), _Capture(limit))


def end_capture():
    # sys.stdout and sys.stderr are process-wide: a cell that replaced them is undone here, so
    # that other executions keep capturing their own output.
    if sys.stdout is not _stdout:
        sys.stdout = _stdout
    if sys.stderr is not _stderr:
        sys.stderr = _stderr
    if _swift_rlm_sandbox.active():
        _restore_builtins()
    pair = _captures.pop(_get_ident(), None)
    if pair is None:
        return ("", 0, "", 0)
    out, out_omitted = pair[0].value()
    err, err_omitted = pair[1].value()
    return (out, out_omitted, err, err_omitted)


# Threads started by captured code write into the capture of the thread that started them. The
# capture rides on the Thread object, which threading registers under the new thread's id for
# exactly its life: nothing keyed by a thread id is left behind when a thread dies early (a
# stop, a failed start), to be found later by an unrelated thread that reuses the id.
_thread_start = threading.Thread.start
_threads_active = threading._active

def _current_capture():
    ident = _get_ident()
    pair = _captures.get(ident)
    if pair is None:
        pair = getattr(_threads_active.get(ident), "_swift_rlm_capture", None)
    return pair

def _start(self):
    self._swift_rlm_capture = _current_capture()
    return _thread_start(self)

threading.Thread.start = _start


def display(value):
    if value is not None:
        print(repr(value))


_DISPLAY = ast.Attribute(
    value=ast.Call(func=ast.Name(id="__import__", ctx=ast.Load()),
                   args=[ast.Constant(value="_swift_rlm")], keywords=[]),
    attr="display", ctx=ast.Load())

_cells = []
_MAX_CELLS = 4096
_COMPILE_ATTEMPTS = 8

def _compile_cell(source, filename):
    tree = ast.parse(source, filename, "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1]
        call = ast.Call(func=_DISPLAY, args=[last.value], keywords=[])
        tree.body[-1] = ast.copy_location(ast.Expr(value=ast.copy_location(call, last)), last)
        ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec", dont_inherit=True)


def compile_cell(source, filename):
    # CPython 3.11 keeps the AST converters' recursion depth in the interpreter, not in the call:
    # when a finalizer hands the GIL over in the middle of a conversion and another thread
    # converts an AST too, one of them fails with a spurious "recursion depth mismatch"
    # SystemError. The conversion has no side effects, so it is tried again.
    for attempt in range(_COMPILE_ATTEMPTS):
        try:
            code = _compile_cell(source, filename)
            break
        except SystemError as error:
            if "recursion depth mismatch" not in str(error) or attempt == _COMPILE_ATTEMPTS - 1:
                raise
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    _cells.append(filename)
    if len(_cells) > _MAX_CELLS:
        linecache.cache.pop(_cells.pop(0), None)
    return code


def format_exception(exc):
    try:
        if isinstance(exc, SyntaxError) and str(exc.filename or "").startswith("<cell "):
            # Raised while compiling the cell: the frames are the bridge's, not the cell's.
            return "".join(traceback.format_exception_only(type(exc), exc))
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:
        return type(exc).__name__ + ": <exception could not be formatted>\n"


# time.sleep in short slices, so that a stop request reaches a sleeping cell promptly.
_real_sleep = _time.sleep

def _sleep(seconds):
    if not seconds > 0.05:
        return _real_sleep(seconds)
    end = _time.monotonic() + seconds
    while True:
        left = end - _time.monotonic()
        if left <= 0:
            return None
        _real_sleep(left if left < 0.05 else 0.05)

_sleep.__doc__ = _real_sleep.__doc__
_time.sleep = _sleep

# Hand the GIL over every millisecond instead of every 5: a REPL host wants a stop request, a
# finished native call or another namespace to get the GIL promptly more than it wants raw
# throughput from CPU-bound threads (with 8 busy threads the worst wait drops from ~250 to ~60 ms).
sys.setswitchinterval(0.001)

_stdout = _Router(0, "<stdout>")
_stderr = _Router(1, "<stderr>")
sys.stdout = _stdout
sys.stderr = _stderr
