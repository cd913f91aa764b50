"""A scripted local server speaking OpenAI's chat-completions protocol, for judge tests.

Started on 127.0.0.1 (a free port) in a thread; reached through the real ``openai`` client.
``script(prompt, n)`` returns the reply text, or an int HTTP status to fail the request with
(429, 500, ...); ``n`` counts the requests so far (1-based). Every request is recorded. ``port`` restarts a judge on the
port an earlier one used (the same endpoint, as after an outage).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(self, script: Callable[[str, int], str | int], model: str = "judge-model", port: int = 0):
        self.script, self.model = script, model
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization", ""))
                    n = len(server.requests)
                prompt = body["messages"][-1]["content"]
                result = server.script(prompt, n)
                if isinstance(result, int):
                    payload = json.dumps({"error": {"message": f"scripted {result}", "type": "test"}}).encode()
                    self.send_response(result)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", server.model),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": result}}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # port 0: a free one; or the same again
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if getattr(self, "_stopped", False):
                return
            self._stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()

    def __exit__(self, *exc) -> None:
        self.stop()
