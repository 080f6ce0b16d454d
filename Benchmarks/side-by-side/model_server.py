"""A scripted OpenAI-compatible server on 127.0.0.1 for the side-by-side benchmarks.

Model names carry the scenario and latency: "root:SCENARIO@MS" plays the root model through the
scenario's turns; "sub@MS" answers "ok". A request whose messages lack the query "benchmark" is a child
RLM's turn (depth-2 scenario). Usage is reported as one token per four characters."""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scenarios import SCENARIOS


def tokens(text):
    return (len(text) + 3) // 4


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits for the
    # client's delayed ACK and every request costs ~40 ms for both implementations.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length))
        model = request.get("model", "")
        messages = request.get("messages", [])
        name, _, latency = model.partition("@")
        delay = int(latency or 0) / 1000
        text = "ok"
        has_system = any(m.get("role") == "system" for m in messages)
        # A request without a system prompt is a plain sub-call, whichever model it names (the
        # reference routes a child's llm_query to the root model's backend).
        if name.startswith("root:") and has_system:
            scenario = SCENARIOS[name[5:]]
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            # The root's messages carry the query "benchmark"; a child RLM's do not.
            is_child = "child_turns" in scenario and "benchmark" not in json.dumps(messages)
            turns = scenario["child_turns"] if is_child else scenario["turns"]
            text = turns[min(turn, len(turns) - 1)]
        if delay:
            time.sleep(delay)
        prompt_tokens = sum(tokens(m.get("content") or "") for m in messages if isinstance(m.get("content"), str))
        body = json.dumps({
            "id": "x", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens(text), "total_tokens": prompt_tokens + tokens(text)},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = Server(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
