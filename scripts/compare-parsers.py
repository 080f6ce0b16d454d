#!/usr/bin/env python3
"""Runs the reply corpus (Tests/RLMTests/Fixtures/replies.json) through the reference
implementation's parser and prints where it and swift-rlm (whose parse the corpus pins and
ReplyCorpusTests checks) agree.

The reference is `rlms` 0.1.1 from PyPI, the last release whose replies may carry a text answer
(0.1.2 and later read only the `answer` dict). It is installed, without its dependencies, into
a cache outside the repository; its parsing module needs only the standard library.

    python3 scripts/compare-parsers.py            # a table; exit 0
    python3 scripts/compare-parsers.py --details  # also each difference in full
"""
import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "Tests/RLMTests/Fixtures/replies.json"
REFERENCE = "rlms==0.1.1"
CACHE = Path(os.environ.get("RLM_REFERENCE_CACHE", Path.home() / ".cache/swift-rlm/reference-0.1.1"))


def reference_parser():
    """The reference's `find_code_blocks` and `find_final_answer`, imported from its wheel."""
    if not (CACHE / "rlm/utils/parsing.py").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--root-user-action=ignore", "--no-deps", "--target", str(CACHE), REFERENCE],
                       check=True)
    # parsing.py imports two types from rlm.core.types only for annotations; give it stand-ins
    # instead of importing the package (whose __init__ pulls in the model clients).
    for name in ("rlm", "rlm.core", "rlm.utils"):
        sys.modules.setdefault(name, types.ModuleType(name))
    stand_in = types.ModuleType("rlm.core.types")
    stand_in.REPLResult = stand_in.RLMIteration = object
    sys.modules["rlm.core.types"] = stand_in
    source = (CACHE / "rlm/utils/parsing.py").read_text()
    module = types.ModuleType("rlm.utils.parsing")
    exec(compile(source, str(CACHE / "rlm/utils/parsing.py"), "exec"), module.__dict__)
    return module.find_code_blocks, module.find_final_answer


class NameEcho:
    """An environment whose FINAL_VAR lookup prints the variable's name, so the reference's own
    FINAL_VAR parsing can be compared without a REPL."""

    def execute_code(self, code):
        name = code[len("print(FINAL_VAR("):-2]
        return types.SimpleNamespace(stdout=f"VAR:{eval(name)}", stderr="")


def ours(entry):
    final = entry["final"]
    if final is None:
        answer = None
    elif "variable" in final and final["variable"] is not None:
        answer = f"VAR:{final['variable']}"
    else:
        answer = final["text"]
    return entry["code"], answer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", action="store_true", help="print each difference in full")
    arguments = parser.parse_args()
    find_code_blocks, find_final_answer = reference_parser()
    cases = json.loads(CORPUS.read_text())["cases"]
    agree = 0
    rows = []
    for entry in cases:
        our_code, our_answer = ours(entry)
        their_code = find_code_blocks(entry["reply"])
        their_answer = find_final_answer(entry["reply"], environment=NameEcho())
        same_code = our_code == their_code
        same_answer = our_answer == their_answer
        agree += same_code and same_answer
        rows.append((entry["name"], same_code, same_answer, our_code, their_code, our_answer, their_answer))
    width = max(len(row[0]) for row in rows)
    print(f"{'reply':<{width}}  code    answer")
    for name, same_code, same_answer, *_ in rows:
        print(f"{name:<{width}}  {'same' if same_code else 'DIFF':<6}  {'same' if same_answer else 'DIFF'}")
    print(f"\n{agree} of {len(rows)} replies parse the same in swift-rlm and {REFERENCE}.")
    if arguments.details:
        for name, same_code, same_answer, our_code, their_code, our_answer, their_answer in rows:
            if same_code and same_answer:
                continue
            print(f"\n## {name}")
            if not same_code:
                print(f"  code, swift-rlm: {our_code!r}\n  code, reference: {their_code!r}")
            if not same_answer:
                print(f"  answer, swift-rlm: {our_answer!r}\n  answer, reference: {their_answer!r}")


if __name__ == "__main__":
    main()
