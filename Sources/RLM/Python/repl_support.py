"""Host-side helpers of one RLM REPL, run in the namespace's private scope.

`user_globals` (the model's globals) and `RESERVED` (a tuple of reserved names) are set by
REPLEnvironment.swift before this runs; `g` is the model's globals. Model code cannot see this
scope by name; SHOW_VARS.__globals__ reaches it, and it holds only this REPL's own state.

Embedded in the RLM module at build time (SwiftPM `embedInCode`).
"""
import types as _types
g = user_globals

def SHOW_VARS():
    rows = []
    for name, value in list(g.items()):
        if name.startswith("_") or name in RESERVED or name == "answer" or isinstance(value, _types.ModuleType):
            continue
        description = type(value).__name__
        try:
            description += ", len " + str(len(value))
        except Exception:
            pass
        rows.append(name + ": " + description)
    print("\n".join(rows) if rows else "No variables yet.")

def _final_is_not_a_function(*args, **kwargs):
    raise NameError("FINAL(...) and FINAL_VAR(...) are not functions: write them in your reply, outside "
                    "any code block. Inside code, set answer['content'] = ... and answer['ready'] = True.")

g["SHOW_VARS"] = SHOW_VARS
g["FINAL"] = _final_is_not_a_function
g["FINAL_VAR"] = _final_is_not_a_function
g["answer"] = {"content": "", "ready": False}
saved = {}

def reserve():
    saved.clear()
    saved.update({name: g[name] for name in RESERVED if name in g})

reserve()

def after_cell():
    restored = [name for name, value in saved.items() if g.get(name, saved) is not value]
    for name in restored:
        g[name] = saved[name]
    answer = g.get("answer")
    if not isinstance(answer, dict):
        answer = {"content": "", "ready": False}
        g["answer"] = answer
        restored.append("answer")
    content = answer.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        try:
            content = str(content)
        except Exception as error:
            content = "<answer content could not be converted: %r>" % (error,)
    try:
        ready = bool(answer.get("ready", False))
    except Exception:
        ready = False
    return [ready, content, restored]

def final_var(name):
    if name not in g:
        return [False, None]
    value = g[name]
    try:
        return [True, value if isinstance(value, str) else str(value)]
    except Exception as error:
        return [True, "<value could not be converted: %r>" % (error,)]
