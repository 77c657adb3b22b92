"""A fault-injecting proxy in front of the real Prometheus, for fault campaigns.

    with PrometheusProxy(prometheus.url) as proxy:
        proxy.rule("huge_load", rewrite=every_value("1e303"))
        proxy.rule("busy_load", status=429, retry_after=5)
        proxy.rule("deep_load", body=b"[" * 100_000)
        proxy.url        # give this to the daemon instead of Prometheus's

Requests whose ``query`` parameter contains a rule's text get that rule (the first that
matches); all others are forwarded unchanged. Every request is recorded (path, query,
headers, time), and :meth:`stop` makes the address refuse connections, as a Prometheus
that went away does. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

Rewrite = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]


@dataclass
class Rule:
    text: str
    status: int | None = None
    retry_after: int | None = None
    body: bytes | None = None
    rewrite: Rewrite | None = None
    active: bool = True


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def every_value(value: str) -> Rewrite:
    """Replace every point's value (e.g. "1e303")."""
    def rewrite(answer: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        for series in answer["data"]["result"]:
            series["values"] = [[t, value] for t, _ in series["values"]]
        return answer
    return rewrite


def point_ahead(seconds: float, value: str) -> Rewrite:
    """Add a point stamped ``seconds`` after the range's end (a skewed clock)."""
    def rewrite(answer: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        for series in answer["data"]["result"]:
            series["values"].append([float(params["end"]) + seconds, value])
        return answer
    return rewrite


class PrometheusProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                with proxy._lock:
                    proxy.seen.append(Seen(parts.path, params,
                                           {k.lower(): v for k, v in self.headers.items()}))
                    rule = next((r for r in proxy.rules
                                 if r.active and r.text in params.get("query", "")), None)
                headers: dict[str, str] = {"Content-Type": "application/json"}
                if rule is not None and rule.status is not None:
                    status, body = rule.status, b'{"status":"error","error":"injected"}'
                    if rule.retry_after is not None:
                        headers["Retry-After"] = str(rule.retry_after)
                elif rule is not None and rule.body is not None:
                    status, body = 200, rule.body
                else:
                    status, body = proxy._forward(self.path)
                    if rule is not None and rule.rewrite is not None and status == 200:
                        body = json.dumps(rule.rewrite(json.loads(body), params)).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._running = False

    def _forward(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.upstream + path, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:   # upstream gone: as a gateway would answer
            return 502, json.dumps({"status": "error", "error": str(exc)}).encode()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def rule(self, text: str, **options: Any) -> Rule:
        rule = Rule(text, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def requests_for(self, text: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if text in s.params.get("query", "")]

    def start(self) -> Self:
        self._thread.start()
        self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self.server.shutdown()
            self._running = False
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
