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
        if _ALIASES.get(name, _ALIASES) is value:
            continue
        description = type(value).__name__
        try:
            description += ", len " + str(len(value))
        except Exception:
            pass
        rows.append(name + ": " + description)
    print("\n".join(rows) if rows else "No variables yet.")

def _submit(text):
    answer = g.get("answer")
    if not isinstance(answer, dict):
        answer = {}
        g["answer"] = answer
    answer["content"] = text
    answer["ready"] = True

def FINAL(value):
    """Submits `value` (as str) as the answer, as `answer["content"] = ...; answer["ready"] = True` does."""
    if value is g.get("answer") and isinstance(value, dict):
        raise ValueError("FINAL(answer) would submit the answer dict itself: put the answer's value in FINAL(...), "
                         "for example FINAL(42), or set answer['content'] and answer['ready'] = True")
    _submit(value if isinstance(value, str) else str(value))

def FINAL_VAR(name):
    """Submits the value of the REPL variable `name` (a str); given a value instead, submits it."""
    if not isinstance(name, str):
        return FINAL(name)
    key = name.strip().strip("\"'`")
    if key not in g:
        raise NameError("FINAL_VAR(%r): there is no variable named %r; assign it first, or use FINAL(value)" % (name, key))
    FINAL(g[key])

# Batched prompts cross into Swift in waves of at most this many characters, so a fan-out over
# a huge context holds a bounded share of it in Swift at once instead of a second full copy.
# A prompt larger than a wave goes alone. Small batches go whole, with no loss of concurrency.
WAVE_CHARACTERS = 8_000_000

def _in_waves(native):
    def batched(prompts, model=None, **options):
        if not isinstance(prompts, list):
            return native(prompts, model, **options)  # the native function explains the TypeError
        results = []
        start = 0
        size = 0
        for index, prompt in enumerate(prompts):
            length = len(prompt) if isinstance(prompt, str) else sum(
                len(m.get("content", "")) if isinstance(m, dict) and isinstance(m.get("content"), str) else 0
                for m in (prompt if isinstance(prompt, list) else []))
            if index > start and size + length > WAVE_CHARACTERS:
                results.extend(native(prompts[start:index], model, **options))
                start, size = index, 0
            size += length
        results.extend(native(prompts[start:], model, **options))
        return results
    batched.__name__ = native.__name__
    batched.__doc__ = native.__doc__
    return batched

for _name in ("llm_query_batched", "rlm_query_batched"):
    if _name in g:
        g[_name] = _in_waves(g[_name])

g["SHOW_VARS"] = SHOW_VARS
g["FINAL"] = FINAL
g["FINAL_VAR"] = FINAL_VAR
# Other spellings work too (`final`, `Final`), but are not reserved: a model's own `final = ...`
# stays its own.
# `repl(...)` prints: small models call the fence's tag as if it were print, turn after turn,
# whatever a NameError says. SHOW_VARS does not list these unless the model rebinds them.
_ALIASES = {"final": FINAL, "final_var": FINAL_VAR, "Final": FINAL, "Final_Var": FINAL_VAR, "repl": print}
g.update(_ALIASES)
g["answer"] = {"content": "", "ready": False}
saved = {}

ANSWER_ITSELF = "<the answer dict itself>"  # RLMLoop.answerItself

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
    if content is answer:
        # `answer["content"] = answer`: its str, "{'content': {...}, 'ready': True}", is no answer.
        content = ANSWER_ITSELF
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

def withdraw_submission():
    """Called when the engine refuses a submission (empty, a placeholder) or questions it: the next cell does
    not submit it again unless the model does."""
    answer = g.get("answer")
    if isinstance(answer, dict):
        answer["ready"] = False

# Sessions that survive a restart: the model's variables, pickled. Engine-bound names, `context`
# (an alias of the newest context_N), `history` and `answer` are rebuilt on restore, not saved.
_NOT_SAVED = {"context", "history", "answer"}

def snapshot_variables():
    import pickle
    saved, skipped = {}, []
    for name, value in list(g.items()):
        if name.startswith("__") or name in _NOT_SAVED or isinstance(value, _types.ModuleType):
            continue
        if _ALIASES.get(name, _ALIASES) is value:  # `final`, `final_var`, `repl`: bound again on restore
            continue
        if name in RESERVED and not name.startswith("context_"):
            continue
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(data)  # keep only what will load again (classes defined in the REPL do not)
        except Exception as error:
            skipped.append([name, "%s: %s" % (type(error).__name__, error)])
            continue
        saved[name] = data
    return [saved, skipped]

def restore_variables(saved):
    import pickle
    for name, data in saved.items():
        g[name] = pickle.loads(data)

def context_contains(texts):
    """For each text, whether `context` holds it; a text that starts with a digit only where no
    digit adjoins it (`2` is not in `2014`), as the engine matches numbers in outputs."""
    import re
    context = g.get("context")
    def holds_in(haystack, text):
        if not text[:1].isdigit():
            return text in haystack
        pattern = r"(?<![0-9])" + re.escape(text) + r"(?![0-9])"
        if isinstance(haystack, str):
            return re.search(pattern, haystack) is not None
        return haystack.search(pattern) is not None  # a mapped file
    def holds(text):
        if not isinstance(text, str):
            return False
        try:
            if isinstance(context, list):
                return any(isinstance(item, str) and holds_in(item, text) for item in context)
            return holds_in(context, text)
        except Exception:
            return False
    return [holds(text) for text in texts]

def _clipped_repr(value, limit):
    """repr(value), built only as far as about `limit` characters (a large list is never repr'd
    whole); a container that does not fit ends with how many items were left out."""
    if isinstance(value, (list, tuple, dict)):
        opening, closing = ("{", "}") if isinstance(value, dict) else (("[", "]") if isinstance(value, list) else ("(", ")"))
        items = value.items() if isinstance(value, dict) else value
        room = max(limit - 16, 8)  # what the items may take; the rest is for "... N more"
        parts, size = [], 1
        for index, item in enumerate(items):
            if size >= room:
                parts.append("... %d more" % (len(value) - index))
                break
            if isinstance(value, dict):
                key = _clipped_repr(item[0], room - size)
                piece = key + ": " + _clipped_repr(item[1], room - size - len(key) - 2)
            else:
                piece = _clipped_repr(item, room - size)
            parts.append(piece)
            size += len(piece) + 2
        return opening + ", ".join(parts) + closing
    if isinstance(value, (str, bytes)) and len(value) > max(limit, 1):
        return repr(value[:max(limit, 1)]) + "..."
    text = repr(value)
    return text if len(text) <= max(limit, 8) else text[:max(limit, 8)] + "..."

def context_preview(limit):
    """The start of `context` as the model would print it: a str's (or a mapped file's) first
    `limit` characters, or a clipped repr of anything else (about `limit` characters); "" when
    there is none."""
    context = g.get("context")
    if context is None or limit <= 0:
        return ""
    try:
        if isinstance(context, str) or type(context).__name__ == "MappedText":
            return context[:limit]
        return _clipped_repr(context, limit)
    except Exception:
        return ""

def context_middle(preview):
    """A sample from the middle of a text `context`, half as long as the start's `preview` and
    from the first line that starts there; None for other contexts or when the text is not over
    four times as long as the preview."""
    context = g.get("context")
    limit = preview // 2
    if context is None or limit <= 0:
        return None
    try:
        if not (isinstance(context, str) or type(context).__name__ == "MappedText") or len(context) <= 4 * preview:
            return None
        middle = len(context) // 2
        window = context[middle:middle + 2 * limit]
        newline = window.find("\n")
        start = newline + 1 if 0 <= newline < limit else 0
        return window[start:start + limit]
    except Exception:
        return None

def without_pasted_context(code):
    """`code` without its top-level statements that set `context` to a string literal (the
    preview pasted in), or None when it has none, does not parse, or shares a line between such
    a statement and another."""
    import ast
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    spans = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        literal = isinstance(value, ast.JoinedStr) or (isinstance(value, ast.Constant) and isinstance(value.value, str))
        if literal and any(isinstance(target, ast.Name) and target.id == "context" for target in targets):
            spans.append((node.lineno, node.end_lineno))
    if not spans:
        return None
    for node in tree.body:
        if (node.lineno, node.end_lineno) not in spans and any(a <= node.lineno <= b or a <= node.end_lineno <= b for a, b in spans):
            return None
    lines = code.split("\n")
    for start, end in reversed(spans):
        del lines[start - 1:end]
    return "\n".join(lines)

def final_var(name):
    if name not in g:
        return [False, None]
    value = g[name]
    try:
        return [True, value if isinstance(value, str) else str(value)]
    except Exception as error:
        return [True, "<value could not be converted: %r>" % (error,)]
