"""The fixed trajectories both implementations run, shared by the server and the runners.

The root model's replies are chosen by scenario (from the model name) and turn (the number of
assistant messages in the request). Sub-calls answer deterministically."""

NEEDLE = "the secret code is 7XK-42QZ"

# Scenarios whose runners do one untimed run first (interpreter start-up, first connections).
WARM = {"batch-16", "batch-256", "depth-2", "concurrent-1", "concurrent-64"}

THREE_TURNS = [
    "```repl\nprint(len(context))\n```",
    "```repl\nx = llm_query('say ok')\nprint(x)\n```",
    "```repl\nanswer['content'] = 'done:' + x\nanswer['ready'] = True\n```",
]

SCENARIOS = {
    # (1) orchestration overhead per completion
    "three-turn": {
        "context": lambda: "alpha beta gamma " * 100,
        "turns": THREE_TURNS,
        "answer": "done:ok",
    },
    # (2) needle in 40 MB
    "needle-40mb": {
        "context": lambda: ("filler text line without anything\n" * 1_142_857)[:20_000_000] + NEEDLE + "\n" + ("more filler here\n" * 1_176_470)[:20_000_000],
        "turns": [
            "```repl\ni = context.find('secret code is ')\nanswer['content'] = context[i + 15:i + 23]\nanswer['ready'] = True\n```",
        ],
        "answer": "7XK-42QZ",
    },
    # (3) batched sub-calls
    "batch-16": {
        "context": lambda: "c",
        "turns": ["```repl\nr = llm_query_batched(['q%d' % i for i in range(16)])\nanswer['content'] = str(sum(1 for x in r if x == 'ok'))\nanswer['ready'] = True\n```"],
        "answer": "16",
    },
    "batch-256": {
        "context": lambda: "c",
        "turns": ["```repl\nr = llm_query_batched(['q%d' % i for i in range(256)])\nanswer['content'] = str(sum(1 for x in r if x == 'ok'))\nanswer['ready'] = True\n```"],
        "answer": "256",
    },
    # (4) per-call overhead
    "sequential-1000": {
        "context": lambda: "c",
        "turns": ["```repl\nn = 0\nfor i in range(1000):\n    n += llm_query('q') == 'ok'\nanswer['content'] = str(n)\nanswer['ready'] = True\n```"],
        "answer": "1000",
    },
    # (5) a depth-2 tree: the root starts two child RLMs, each makes a sub-call
    "depth-2": {
        "context": lambda: "c",
        "turns": ["```repl\nr = [rlm_query('child task %d' % i) for i in range(2)]\nanswer['content'] = '+'.join(r)\nanswer['ready'] = True\n```"],
        "child_turns": ["```repl\ny = llm_query('leaf')\nanswer['content'] = 'child:' + y\nanswer['ready'] = True\n```"],
        "answer": "child:ok+child:ok",
    },
    # (6) one run like three-turn with the root model's latency too: the yardstick for concurrent-64
    "concurrent-1": {
        "context": lambda: "alpha beta gamma " * 100,
        "turns": THREE_TURNS,
        "answer": "done:ok",
    },
    # (6) many runs at once (each like three-turn)
    "concurrent-64": {
        "context": lambda: "alpha beta gamma " * 100,
        "turns": THREE_TURNS,
        "answer": "done:ok",
    },
}
