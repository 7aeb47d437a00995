"""A tiny scripted OpenAI-style HTTP server on 127.0.0.1 for the smoke / port-forward / endpoint tests.

By default it answers like a healthy vLLM (`/v1/models`, chat and completions, streamed with usage and
[DONE]). `script(path, Reply(...), ...)` queues exact answers for the next requests on a path (then the
default answers resume; with `repeat=True` the last one repeats), so each fault-matrix row is reproduced
byte for byte; `requests` records what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    frames: list[str] | None = None  # SSE payloads, sent chunked one per write
    close_early: bool = False  # cut the chunked stream before its end
    delay: float = 0.0  # before the status line
    frame_delay: float = 0.0


def chat_reply(model: str, content: str = "Hello there!", finish: str = "stop", usage: bool = True) -> Reply:
    doc = {"id": "c1", "object": "chat.completion", "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    if usage:
        doc["usage"] = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    return Reply(json=doc)


def completion_reply(model: str, text: str = " Hello there!", finish: str = "stop") -> Reply:
    return Reply(json={"id": "p1", "object": "text_completion", "model": model,
                       "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})


def stream_reply(model: str, chat: bool, pieces=("Hel", "lo", "!"), finish: str = "stop", done: bool = True,
                 usage: bool = True) -> Reply:
    frames = []
    for i, piece in enumerate(pieces):
        choice = {"index": 0, "finish_reason": finish if i == len(pieces) - 1 else None}
        choice.update({"delta": {"content": piece}} if chat else {"text": piece})
        frames.append(json.dumps({"id": "s1", "model": model, "choices": [choice]}))
    if usage:
        frames.append(json.dumps({"id": "s1", "model": model, "choices": [],
                                  "usage": {"prompt_tokens": 7, "completion_tokens": len(pieces),
                                            "total_tokens": 7 + len(pieces)}}))
    if done:
        frames.append("[DONE]")
    return Reply(content_type="text/event-stream", frames=frames)


class FaultServer:
    def __init__(self, model: str = "test-model") -> None:
        self.model = model
        self.scripts: dict[str, list[Reply]] = {}
        self.repeat: dict[str, bool] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._serve(None)

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                self._serve(json.loads(raw) if raw else None)

            def _serve(self, body):
                path = self.path.split("?")[0]
                with server.lock:
                    server.requests.append({"t": time.monotonic(), "method": self.command, "path": path,
                                            "body": body, "headers": dict(self.headers)})
                reply = server.next_reply(path, body)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    server.write(self, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def script(self, path: str, *replies: Reply, repeat: bool = False) -> FaultServer:
        with self.lock:
            self.scripts[path] = list(replies)
            self.repeat[path] = repeat
        return self

    def hits(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def next_reply(self, path: str, body) -> Reply:
        with self.lock:
            queue = self.scripts.get(path)
            if queue:
                return queue[0] if len(queue) == 1 and self.repeat.get(path) else queue.pop(0)
        return self.default(path, body)

    def default(self, path: str, body) -> Reply:
        if path == "/v1/models":
            return Reply(json={"object": "list", "data": [{"id": self.model, "object": "model"}]})
        stream = bool(body and body.get("stream"))
        model = (body or {}).get("model") or self.model
        if path == "/v1/chat/completions":
            return stream_reply(model, True) if stream else chat_reply(model)
        if path == "/v1/completions":
            return stream_reply(model, False) if stream else completion_reply(model)
        return Reply(status=404, body=b"not found", content_type="text/plain")

    @staticmethod
    def write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        handler.send_response(reply.status)
        handler.send_header("content-type", reply.content_type)
        for k, v in reply.headers.items():
            handler.send_header(k, v)
        if reply.frames is None:
            data = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for frame in reply.frames:
            data = f"data: {frame}\n\n".encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
            if reply.frame_delay:
                time.sleep(reply.frame_delay)
        if reply.close_early:
            handler.close_connection = True
            handler.wfile.flush()
            handler.connection.shutdown(2)
            return
        handler.wfile.write(b"0\r\n\r\n")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


FAKE_KUBECTL = r'''#!{python}
"""A real process playing kubectl: answers `get` from JSON files, and `port-forward` like kubectl does."""
import json, os, subprocess, sys, time
state = {state!r}
args = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as fh:
    fh.write(json.dumps(args) + "\n")
if "port-forward" in args:
    # a grandchild in the same process group: the whole group must be reaped
    kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(state, "pids"), "a") as fh:
        fh.write(f"{{os.getpid()}} {{kid.pid}}\n")
    print(f"Forwarding from 127.0.0.1:{{open(os.path.join(state, 'port')).read().strip()}} -> 80", flush=True)
    time.sleep(120)
    sys.exit(0)
if "config" in args and "current-context" in args:
    print("fake-ctx")
    sys.exit(0)
if "config" in args and "view" in args:
    print(json.dumps({{"clusters": [{{"name": "c", "cluster": {{"server": "https://127.0.0.1:6443"}}}}]}}))
    sys.exit(0)
if "version" in args:  # the reachability probe
    print(json.dumps({{"clientVersion": {{"gitVersion": "v1.33.9"}}, "serverVersion": {{"gitVersion": "v1.33.1"}}}}))
    sys.exit(0)
rest = args[args.index("get") + 1:]
if "/" in rest[0]:  # `get kind/name kind/name ... --ignore-not-found`: a List of the objects that exist
    items = []
    for ref in rest:
        if ref.startswith("-") or "/" not in ref:
            continue
        path = os.path.join(state, ref.replace("/", "-", 1) + ".json")
        if os.path.exists(path):
            items.append(json.load(open(path)))
        elif "--ignore-not-found" not in args:
            sys.stderr.write(f'Error from server (NotFound): "{{ref}}" not found\n')
            sys.exit(1)
    print(json.dumps({{"apiVersion": "v1", "kind": "List", "items": items}}) if items else "")
    sys.exit(0)
kind, name = rest[0], None
rest = rest[1:]
if rest and not rest[0].startswith("-"):
    name = rest[0]
path = os.path.join(state, f"{{kind}}-{{name}}.json" if name else f"{{kind}}.json")
if not os.path.exists(path):
    sys.stderr.write(f'Error from server (NotFound): {{kind}} "{{name}}" not found\n')
    sys.exit(1)
sys.stdout.write(open(path).read())
'''


def write_fake_kubectl(state_dir, port: int, objects: dict[str, object]):
    """A kubectl script in `state_dir`; `objects` maps "kind-name" or "kind" to the JSON `get` prints."""
    import os
    import sys
    from pathlib import Path

    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "port").write_text(str(port))
    for key, doc in objects.items():
        (state / f"{key}.json").write_text(json.dumps(doc))
    exe = state / "kubectl"
    exe.write_text(FAKE_KUBECTL.format(python=sys.executable, state=str(state)))
    exe.chmod(0o755)
    os.utime(exe)
    return exe


def pids_alive(state_dir, settle_s: float = 2.0) -> list[int]:
    """The fake port-forward processes (and their grandchildren) still running `settle_s` after the call: a
    signalled process group exits asynchronously, and under load that takes more than an instant."""
    import time

    deadline = time.monotonic() + settle_s
    while (alive := _pids_alive(state_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _pids_alive(state_dir) -> list[int]:
    import os
    from pathlib import Path

    path = Path(state_dir) / "pids"
    pids = [int(p) for line in (path.read_text().splitlines() if path.exists() else []) for p in line.split()]
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:  # a zombie awaiting its reaper is gone for our purpose
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            continue
    return alive
