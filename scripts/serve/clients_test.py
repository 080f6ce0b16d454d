"""`rlm serve` and `rlm mcp` driven by clients nobody here wrote: the official `openai` and `mcp`
Python packages. Run by scripts/test-clients.sh, which makes a throwaway venv for them.

    python clients_test.py PATH/TO/rlm
"""
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import httpx
import openai

sys.path.insert(0, os.path.dirname(__file__))
import fake_model  # noqa: E402

RLM = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".build/debug/rlm")
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


class Server:
    """An `rlm serve` process on a free port, its stderr collected."""

    def __init__(self, model_port, store, tenants=None, extra=()):
        args = [RLM, "serve", "--base-url", f"http://127.0.0.1:{model_port}/v1", "--model", "fake",
                "--port", "0", "--store", store, "--max-body-mib", "1", "--max-iterations", "4",
                # The fake model reports a 32K window: these tests drive the RLM loop, not the direct call.
                "--strategy", "rlm", *extra]
        if tenants:
            args += ["--tenants", tenants]
        env = dict(os.environ, ALICE_TOKEN=ALICE, BOB_TOKEN=BOB)
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
        self.stderr = []
        ready = threading.Event()

        def read():
            for line in self.process.stderr:
                self.stderr.append(line)
                match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            self.process.kill()
            raise RuntimeError("rlm serve did not start:\n" + "".join(self.stderr))
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, token=ALICE, **kwargs):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=token, max_retries=0, **kwargs)

    def get(self, path, token=ALICE):
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path, body=None, token=ALICE):
        request = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stop(self, timeout=60):
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self.process.stderr.close()
        return status

    def children(self):
        """The server's child processes (its confined REPL workers)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as file:
                        fields = file.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    found.append(int(entry))
        return found


class ServeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = fake_model.start()
        cls.model_port = cls.model.server_address[1]
        cls.directory = tempfile.mkdtemp(prefix="rlm-clients-")
        cls.store = os.path.join(cls.directory, "store.sqlite")
        cls.tenants = os.path.join(cls.directory, "tenants.json")
        with open(cls.tenants, "w") as file:
            json.dump({"tenants": [
                {"name": "alice", "token_env": "ALICE_TOKEN", "max_concurrent_runs": 4},
                {"name": "bob", "token_env": "BOB_TOKEN"}]}, file)
        os.chmod(cls.tenants, 0o600)
        # With tenants, runs are confined in worker processes by default.
        # No warm workers: a test counts this server's worker processes, which a pool refilling
        # in the background would change under it.
        cls.server = Server(cls.model_port, cls.store, cls.tenants, extra=["--warm-workers", "0"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.model.shutdown()

    def test_models_and_completion(self):
        client = self.server.client()
        self.assertEqual([m.id for m in client.models.list().data], ["rlm"])
        completion = client.chat.completions.create(
            model="rlm", messages=[{"role": "user", "content": "alpha beta gamma\n\nHow long is it?"}])
        self.assertEqual(completion.choices[0].message.content, "16 characters, first word alpha")
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        self.assertGreater(completion.usage.prompt_tokens, 0)
        self.assertEqual(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens)
        self.assertTrue(completion.model_extra["rlm"]["run_id"].startswith("run_"))

    def test_streaming(self):
        client = self.server.client()
        stream = client.chat.completions.create(
            model="rlm", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "one two three\n\nsubcalls"}])
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, "echo: part 0 | echo: part 1 | echo: part 2")
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "stop")
        self.assertGreater(chunks[-1].usage.completion_tokens, 0)

    def test_session_continues(self):
        session = self.server.post("/v1/sessions")["id"]
        client = self.server.client()
        first = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "kestrel wing\n\nremember"}],
                                               extra_body={"rlm_session": session})
        self.assertEqual(first.choices[0].message.content, "stored kestrel")
        second = client.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "recall"}],
                                                extra_body={"rlm_session": session, "rlm_context": "ignored now"})
        self.assertEqual(second.choices[0].message.content, "recalled kestrel")
        self.assertEqual(self.server.get(f"/v1/sessions/{session}")["turns"], 2)
        # Bob cannot use Alice's session.
        with self.assertRaises(openai.NotFoundError):
            self.server.client(BOB).chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "recall"}], extra_body={"rlm_session": session})

    def test_bad_token(self):
        with self.assertRaises(openai.AuthenticationError) as raised:
            self.server.client("not-a-token-of-this-server").chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "x\n\ny"}])
        self.assertIn("bearer token", str(raised.exception))

    def test_malformed_request(self):
        with self.assertRaises(openai.BadRequestError) as raised:
            self.server.client().chat.completions.create(model="rlm", messages=[{"role": "assistant", "content": "no user"}])
        self.assertIn("role \"user\"", str(raised.exception))
        response = httpx.post(self.server.url + "/v1/chat/completions", content=b"{not json",
                              headers={"Authorization": f"Bearer {ALICE}"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("not a chat completion request", response.json()["error"]["message"])

    def test_oversized_body(self):
        with self.assertRaises(openai.APIStatusError) as raised:
            self.server.client().chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "x" * (2 << 20)}])
        self.assertEqual(raised.exception.status_code, 413)

    def test_disconnect_mid_stream_cancels_the_run(self):
        workers = len(self.server.children())
        seen = 0
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", self.server.url + "/v1/chat/completions",
                             headers={"Authorization": f"Bearer {ALICE}"},
                             json={"model": "rlm", "stream": True,
                                   "messages": [{"role": "user", "content": "x y\n\nslower"}]}) as response:
                for line in response.iter_lines():
                    seen = max(seen, len(self.server.children()))
                    if line.startswith(": rlm node 0 depth 0: sub-call"):
                        break  # the run is waiting on its slow sub-call; the client goes away
        deadline = time.time() + 20
        status = None
        while time.time() < deadline:
            runs = self.server.get("/v1/runs")["data"]
            slow = [r for r in runs if r["query"] == "slower"]
            status = slow[0]["status"] if slow else None
            if status == "cancelled":
                break
            time.sleep(0.2)
        self.assertEqual(status, "cancelled")
        self.assertEqual(self.server.get("/health")["runs"], "0")
        self.assertGreater(seen, workers, "the run had a worker process")
        deadline = time.time() + 10
        while len(self.server.children()) > workers and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(self.server.children()), workers, "the cancelled run's worker is gone")


class LifecycleTests(unittest.TestCase):
    """Restarts, graceful shutdown and two servers on one store, each with its own processes."""

    @classmethod
    def setUpClass(cls):
        cls.model = fake_model.start()
        cls.model_port = cls.model.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.model.shutdown()

    def test_session_survives_a_restart_and_moves_between_servers(self):
        store = os.path.join(tempfile.mkdtemp(prefix="rlm-restart-"), "store.sqlite")
        first = Server(self.model_port, store)
        session = first.post("/v1/sessions")["id"]
        answer = first.client().chat.completions.create(
            model="rlm", messages=[{"role": "user", "content": "heron lake\n\nremember"}], extra_body={"rlm_session": session})
        self.assertEqual(answer.choices[0].message.content, "stored heron")
        self.assertEqual(first.stop(), 0)
        # A new process, and then a second one beside it, on the same store.
        second = Server(self.model_port, store)
        third = Server(self.model_port, store)
        try:
            recall = second.client().chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "recall"}], extra_body={"rlm_session": session})
            self.assertEqual(recall.choices[0].message.content, "recalled heron")
            again = third.post(f"/v1/sessions/{session}/query", {"query": "recall"})
            self.assertEqual(again["choices"][0]["message"]["content"], "recalled heron")
            self.assertEqual(second.get(f"/v1/sessions/{session}")["turns"], 3)
        finally:
            self.assertEqual(second.stop(), 0)
            self.assertEqual(third.stop(), 0)

    @unittest.skipUnless(os.environ.get("RLM_TEST_POSTGRES_URL"), "needs PostgreSQL (scripts/test-clients.sh starts one)")
    def test_two_servers_share_a_postgres_store(self):
        url = os.environ["RLM_TEST_POSTGRES_URL"]  # its password is in $PGPASSWORD, not on a command line
        a = Server(self.model_port, url)
        b = Server(self.model_port, url)
        try:
            session = a.post("/v1/sessions")["id"]
            self.assertEqual(a.post(f"/v1/sessions/{session}/query", {"query": "remember", "context": "plover sand"})
                             ["choices"][0]["message"]["content"], "stored plover")
            self.assertEqual(b.post(f"/v1/sessions/{session}/query", {"query": "recall"})
                             ["choices"][0]["message"]["content"], "recalled plover")
            self.assertEqual(a.post(f"/v1/sessions/{session}/query", {"query": "remember", "context": "tern foam"})
                             ["choices"][0]["message"]["content"], "stored tern")
            self.assertEqual(b.post(f"/v1/sessions/{session}/query", {"query": "recall"})
                             ["choices"][0]["message"]["content"], "recalled tern")
            self.assertEqual(a.get(f"/v1/sessions/{session}")["turns"], 4)
            self.assertIn(session, [s["id"] for s in b.get("/v1/sessions")["data"]])
        finally:
            self.assertEqual(a.stop(), 0)
            self.assertEqual(b.stop(), 0)
        self.assertFalse(any(os.environ["PGPASSWORD"] in line for line in a.stderr + b.stderr))

    @unittest.skipUnless(os.environ.get("RLM_TEST_POSTGRES_URL"), "needs PostgreSQL (scripts/test-clients.sh starts one)")
    def test_two_servers_share_a_postgres_reply_cache(self):
        url = os.environ["RLM_TEST_POSTGRES_URL"]
        stores = tempfile.mkdtemp(prefix="rlm-cache-")
        # scripts/test-clients.sh starts an empty database, so the first server's run misses.
        ask = {"model": "rlm", "messages": [{"role": "user", "content": "x\n\nsubcalls"}]}
        a = Server(self.model_port, os.path.join(stores, "a.sqlite"), extra=["--cache", url, "--temperature", "0"])
        b = Server(self.model_port, os.path.join(stores, "b.sqlite"), extra=["--cache", url, "--temperature", "0"])
        try:
            first = a.post("/v1/chat/completions", ask)
            self.assertEqual(first["choices"][0]["message"]["content"], "echo: part 0 | echo: part 1 | echo: part 2")
            self.assertEqual(first["rlm"]["cache_hits"], 0)
            second = b.post("/v1/chat/completions", ask)
            self.assertEqual(second["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"])
            self.assertEqual(second["rlm"]["cache_hits"], 3)
            self.assertGreater(second["rlm"]["saved_tokens"], 0)
        finally:
            self.assertEqual(a.stop(), 0)
            self.assertEqual(b.stop(), 0)
        self.assertFalse(any(os.environ["PGPASSWORD"] in line for line in a.stderr + b.stderr))

    def test_sigterm_lets_runs_finish_within_the_grace(self):
        store = os.path.join(tempfile.mkdtemp(prefix="rlm-grace-"), "store.sqlite")
        server = Server(self.model_port, store, extra=["--shutdown-grace", "15"])
        result = {}

        def ask():
            result["answer"] = server.client().chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "x\n\nslow"}]).choices[0].message.content
        asker = threading.Thread(target=ask)
        asker.start()
        while server.get("/health")["runs"] != "1":
            time.sleep(0.05)
        started = time.time()
        self.assertEqual(server.stop(), 0)
        asker.join(5)
        self.assertEqual(result.get("answer"), "echo: SLEEP 4")
        self.assertLess(time.time() - started, 14)

    def test_sigterm_cancels_runs_past_the_grace(self):
        store = os.path.join(tempfile.mkdtemp(prefix="rlm-cancel-"), "store.sqlite")
        server = Server(self.model_port, store, extra=["--shutdown-grace", "1"])
        errors = []

        def ask():
            try:
                server.client().chat.completions.create(model="rlm", messages=[{"role": "user", "content": "x\n\nslower"}])
            except openai.APIError as error:
                errors.append(error)
        asker = threading.Thread(target=ask)
        asker.start()
        while server.get("/health")["runs"] != "1":
            time.sleep(0.05)
        started = time.time()
        self.assertEqual(server.stop(), 0)
        self.assertLess(time.time() - started, 15, "the 30 s run was cancelled after the 1 s grace")
        asker.join(10)
        self.assertEqual(len(errors), 1, "the client was told the run did not finish")


class MCPTests(unittest.TestCase):
    def test_tools_over_stdio(self):
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        model = fake_model.start()
        directory = tempfile.mkdtemp(prefix="rlm-mcp-")
        document = os.path.join(directory, "notes.txt")
        with open(document, "w") as file:
            file.write("falcon notes")
        parameters = StdioServerParameters(command=RLM, args=[
            "mcp", "--base-url", f"http://127.0.0.1:{model.server_address[1]}/v1", "--model", "fake",
            "--allow-files", directory, "--max-iterations", "4", "--strategy", "rlm"])

        async def scenario():
            async with stdio_client(parameters) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = {tool.name for tool in (await session.list_tools()).tools}
                    self.assertTrue({"rlm_query", "rlm_session_create", "rlm_session_delete"} <= tools)
                    progress = []

                    async def on_progress(value, total, message):
                        progress.append(message)
                    result = await session.call_tool("rlm_query", {"query": "subcalls", "text": "a b c"}, progress_callback=on_progress)
                    self.assertFalse(result.isError)
                    self.assertEqual(result.content[0].text, "echo: part 0 | echo: part 1 | echo: part 2")
                    self.assertTrue(any("sub-call" in (m or "") for m in progress), progress)
                    from_file = await session.call_tool("rlm_query", {"query": "size", "files": [document]})
                    self.assertEqual(from_file.content[0].text, "12 characters, first word falcon")
                    # Sessions.
                    created = await session.call_tool("rlm_session_create", {})
                    sid = created.content[0].text
                    stored = await session.call_tool("rlm_query", {"query": "remember", "text": "osprey", "session": sid})
                    self.assertEqual(stored.content[0].text, "stored osprey")
                    recalled = await session.call_tool("rlm_query", {"query": "recall", "session": sid})
                    self.assertEqual(recalled.content[0].text, "recalled osprey")
                    # Errors are tool errors with text that says what to fix.
                    missing = await session.call_tool("rlm_query", {"text": "no query"})
                    self.assertTrue(missing.isError)
                    self.assertIn("needs `query`", missing.content[0].text)
                    outside = await session.call_tool("rlm_query", {"query": "size", "files": ["/etc/passwd"]})
                    self.assertTrue(outside.isError)
                    self.assertIn("not under a directory", outside.content[0].text)
        try:
            asyncio.run(asyncio.wait_for(scenario(), 120))
        finally:
            model.shutdown()


if __name__ == "__main__":
    import warnings
    # The clients' pooled sockets, closed at exit; not the server's.
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2, warnings="ignore")
