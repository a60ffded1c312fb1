"""A local OpenAI-compatible chat-completions server that answers from a script.

Each POST to ``/v1/chat/completions`` takes the next step: a JSON answer, raw text (malformed
JSON), an HTTP status, or a stall longer than the client's timeout. Requests are recorded so
tests can check what the gateway sent. An exhausted script answers 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    kind: str  # json | text | status | stall
    value: Any = None


def answer(obj: Any) -> Step:
    return Step("json", obj)


@dataclass
class ScriptedLLM:
    steps: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *steps: Step) -> None:
        with self.lock:
            self.steps.extend(steps)

    def next(self, body: dict[str, Any]) -> Step:
        with self.lock:
            self.requests.append(body)
            return self.steps.popleft() if self.steps else Step("status", 500)

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                step = llm.next(body)
                if step.kind == "stall":
                    time.sleep(step.value)
                    self._send(200, {"choices": []})
                elif step.kind == "status":
                    self._send(step.value, {"error": {"message": "scripted failure"}})
                else:
                    content = json.dumps(step.value) if step.kind == "json" else step.value
                    self._send(200, {"id": "x", "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}]})

            def _send(self, code: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a stall past its timeout)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
