"""A scripted Prometheus HTTP API, for answers a real Prometheus does not give on demand:
garbage bodies, 5xx, 429 with Retry-After, slow answers, dropped connections, TLS.

    with FakePrometheus([Reply(status=429, headers={"Retry-After": "5"}), Reply()]) as fake:
        PrometheusSource(fake.url) ...

Answers /api/v1/query_range (any path, in fact) from a script: a list of replies (the
last one repeats) or a function of the request. Listens on 127.0.0.1, optionally with TLS.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str/bytes as is; None -> a fresh one-series matrix
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": [[t, v] for t, v in points]} for labels, points in series
    ]}}


def grid_answer(seen: Seen, value: str = "5", labels: dict[str, str] | None = None) -> Reply:
    """A series with a point at every step of the requested range, like Prometheus."""
    start, end, step = (float(seen.params[k]) for k in ("start", "end", "step"))
    count = round((end - start) / step) + 1
    points = [(round(start + k * step, 3), value) for k in range(count)]
    return Reply(body=matrix((labels or {"__name__": "load"}, points)))


class FakePrometheus:
    """Answers /api/v1/query_range from a script: a list of replies (the last one repeats)
    or a function of the request. Listens on 127.0.0.1, optionally with TLS."""

    def __init__(
        self,
        script: list[Reply] | Callable[[Seen], Reply] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.script = script or grid_answer
        self.seen: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(parts.path, dict(parse_qsl(parts.query)), dict(self.headers))
                fake.seen.append(seen)
                reply = fake._next(seen)
                time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                body = reply.body
                if isinstance(body, dict):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a deliberately slow handler must not block close
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _next(self, seen: Seen) -> Reply:
        if callable(self.script):
            return self.script(seen)
        reply = self.script[0] if len(self.script) == 1 else self.script.pop(0)
        if reply.body is None and reply.status == 200 and not reply.drop:
            return Reply(body=grid_answer(seen).body, headers=reply.headers, delay=reply.delay)
        return reply

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
