#!/usr/bin/env python3
"""Turns one kept trajectory of `rlm bench --keep-trajectories` into a replay fixture for
Tests/RLMBenchTests/ReplayCorpusTests.swift: the root model's replies in order, each sub-call's
prompt (as the trajectory clipped it) and response, and what the run ended with.

    python3 scripts/replay-fixture.py OUT TASK_ID --model NAME --family NAME [--seed 1]
        [--assists default] [--max-iterations 6] [--max-calls 60] [--recorded TEXT] > fixture.json

The task's context is not stored: the test makes it again from its id and seed.
"""
import argparse
import json
import pathlib
import sys

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("task")
parser.add_argument("--model", required=True)
parser.add_argument("--family", required=True, help="the model family, e.g. Qwen2.5 or SmolLM2")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--assists", default="default")
parser.add_argument("--max-iterations", type=int, default=12)
parser.add_argument("--max-calls", type=int, default=60)
parser.add_argument("--recorded", default="")
args = parser.parse_args()

path = pathlib.Path(args.out) / "trajectories" / f"{args.task}.jsonl"
events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
if any(event.get("depth", 0) > 0 for event in events):
    sys.exit(f"{path}: child RLMs are not replayed")
root_replies = [event["text"] for event in events if event["type"] == "model_reply" and event["node"] == 0]
started = {event["call"]: event for event in events if event["type"] == "subcall_started"}
subcalls = []
for event in sorted((e for e in events if e["type"] == "subcall_finished"), key=lambda e: e["call"]):
    prompt = started[event["call"]]
    if prompt["prompt_chars"] > 4000 and "characters left out" not in prompt["prompt"]:
        sys.exit(f"{path}: call {event['call']}'s prompt was cut without a marker")
    if event.get("error"):
        sys.exit(f"{path}: call {event['call']} failed ({event['error']}); failed sub-calls are not replayed")
    subcalls.append({"prompt": prompt["prompt"], "response": event["response"]})
answers = [event for event in events if event["type"] == "answer" and event["node"] == 0]
limits = [event for event in events if event["type"] == "limit_reached" and event["node"] == 0]
strategy = [event for event in events if event["type"] == "strategy" and event["node"] == 0]
if strategy and strategy[-1]["strategy"] != "rlm":
    sys.exit(f"{path}: answered without the loop")
fixture = {
    "model": args.model,
    "family": args.family,
    "recorded": args.recorded,
    "task": args.task,
    "seed": args.seed,
    "settings": {"assists": args.assists, "max_iterations": args.max_iterations, "max_calls": args.max_calls},
    "root_replies": root_replies,
    "subcalls": subcalls,
    "answer": answers[-1]["answer"] if answers else None,
    "iterations": answers[-1]["iterations"] if answers else None,
    "limit": limits[-1]["limit"] if limits and not answers else None,
}
json.dump(fixture, sys.stdout, indent=1, ensure_ascii=False)
print()
