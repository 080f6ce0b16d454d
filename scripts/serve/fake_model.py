"""A scripted OpenAI-compatible model server on 127.0.0.1, for driving `rlm serve` and `rlm mcp`
from real clients without a real model.

A root turn (its first user message starts with "Query: ") gets a ```repl block chosen by the
query's first word: `remember` keeps the context's first word in the REPL, `recall` answers with
it, `slow` makes a sub-call that sleeps (`SLEEP n` seconds), `subcalls` fans out three sub-calls,
anything else answers with the context's size and first word. A sub-call gets "echo: PROMPT".
Every reply waits --latency-ms first.

    python3 fake_model.py --port 0      # prints the port on stdout
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_code(code):
    return "```repl\n" + code + "\n```"


SCRIPTS = {
    "remember": "remembered = context.split()[0]\nanswer['content'] = 'stored ' + remembered\nanswer['ready'] = True",
    "recall": "answer['content'] = 'recalled ' + remembered\nanswer['ready'] = True",
    "slow": "answer['content'] = llm_query('SLEEP 4')\nanswer['ready'] = True",
    "slower": "answer['content'] = llm_query('SLEEP 30')\nanswer['ready'] = True",
    "subcalls": "parts = llm_query_batched([f'part {i}' for i in range(3)])\nanswer['content'] = ' | '.join(parts)\nanswer['ready'] = True",
}
DEFAULT = "answer['content'] = f'{len(context)} characters, first word {context.split()[0]}'\nanswer['ready'] = True"


def reply_for(messages):
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    first = next((u for u in users if isinstance(u, str) and u.startswith("Query: ")), None)
    if first is not None:
        query = first[len("Query: "):].split("\n", 1)[0]
        word = (query.split() or [""])[0]
        return answer_code(SCRIPTS.get(word, DEFAULT))
    prompt = users[-1] if users else ""
    match = re.match(r"SLEEP (\d+(?:\.\d+)?)", prompt)
    if match:
        time.sleep(float(match.group(1)))
    return "echo: " + prompt[:40]


class Handler(BaseHTTPRequestHandler):
    latency = 0.0
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model", "max_model_len": 32768}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        time.sleep(self.latency)
        text = reply_for(request.get("messages") or [])
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in request.get("messages") or []) // 4 + 1
        self._send(200, {
            "id": "fake", "object": "chat.completion", "model": request.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4 + 1,
                      "total_tokens": prompt_tokens + len(text) // 4 + 1},
        })


def start(port=0, latency_ms=0.0):
    """Starts the server on a thread; returns it (its port is server.server_address[1])."""
    handler = type("ScriptedHandler", (Handler,), {"latency": latency_ms / 1000})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0)
    args = parser.parse_args()
    server = start(args.port, args.latency_ms)
    print(server.server_address[1], flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
