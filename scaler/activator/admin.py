"""The admin port: /v1/stats for the daemons, /metrics for Prometheus, /healthz, /readyz.

Kept off the proxy port, so no workload path can shadow it and no client of a workload
can read it through the ingress.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from httptools import HttpParserError, HttpRequestParser
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from scaler.activator.http1 import simple_response


class AdminConnection(asyncio.Protocol):
    def __init__(self, pages: dict[str, Callable[[], tuple[int, str, bytes]]]) -> None:
        self.pages = pages
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            self.transport.write(simple_response(400, "malformed request", close=True))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        page = self.pages.get(path)
        if page is None:
            self.transport.write(simple_response(
                404, f"no such page {path!r} (try {', '.join(sorted(self.pages))})",
                close=not keep_alive))
        elif method not in (b"GET", b"HEAD"):
            self.transport.write(simple_response(405, f"{path} answers GET only",
                                                 close=not keep_alive))
        else:
            status, content_type, body = page()
            head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Service Unavailable'}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                    "Cache-Control: no-store\r\n"
                    + ("" if keep_alive else "Connection: close\r\n") + "\r\n").encode()
            self.transport.write(head if method == b"HEAD" else head + body)
        if not keep_alive:
            self.transport.close()


def admin_pages(*, stats: Callable[[], dict], registry: CollectorRegistry,
                healthy: Callable[[], tuple[bool, str]],
                ready: Callable[[], tuple[bool, str]]) -> dict:
    def stats_page():
        return 200, "application/json", json.dumps(stats(), separators=(",", ":")).encode()

    def metrics_page():
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    def check(probe):
        def page():
            ok, why = probe()
            return (200 if ok else 503), "text/plain; charset=utf-8", (
                (why or ("ok" if ok else "not ok")) + "\n").encode()
        return page

    return {"/v1/stats": stats_page, "/metrics": metrics_page,
            "/healthz": check(healthy), "/readyz": check(ready)}
