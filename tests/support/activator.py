"""Run the activator in-process (its own event loop in a thread) or as the real process.

    with ActivatorThread([route("app", hosts=["app.test"])], {"app": [backend.address]}) as a:
        a.get("/echo", host="app.test")
        a.set_endpoints("app", [])          # back to zero: requests are held

:class:`PokeReceiver` stands in for the daemon's side of a poke: a real HTTP server that
records every POST it gets, with its arrival time.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from scaler.activator.cli import new_loop
from scaler.activator.config import Route
from scaler.activator.endpoints import Endpoint, StaticEndpoints
from scaler.activator.server import Activator
from support.prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]


def route(policy: str = "app", *, hosts: list[str] | None = None, max_pending: int = 1000,
          timeout: float = 60.0, mode: str = "whenNeeded") -> Route:
    return Route(policy=policy, namespace="default", service=policy, port=8080,
                 hosts=tuple(hosts or [f"{policy}.test"]), max_pending=max_pending,
                 timeout=timeout, mode=mode)


class RecordingLog:
    """A structlog-shaped logger that keeps its events, for asserting what was logged."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.events.append({"event": event, "level": level, **kw})

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)

    def named(self, event: str) -> list[dict]:
        return [e for e in self.events if e["event"] == event]


class ActivatorThread:
    def __init__(self, routes: list[Route], endpoints: dict[str, list[str]] | None = None, *,
                 daemon_urls: list[str] = (), source=None, **options: Any) -> None:
        self.routes = routes
        self.source = source or StaticEndpoints({p: [Endpoint.parse(e) for e in eps]
                                                 for p, eps in (endpoints or {}).items()})
        self.registry = CollectorRegistry()
        self.log = RecordingLog()
        self.activator = Activator(routes, self.source, registry=self.registry,
                                   daemon_urls=daemon_urls, log=self.log, **options)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> ActivatorThread:
        self._thread = threading.Thread(target=self._run, name="activator", daemon=True)
        self._thread.start()
        if not self._started.wait(10) or self._error:
            raise RuntimeError(f"activator did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        self.loop = new_loop()
        try:
            self.loop.run_until_complete(
                self.activator.start(("127.0.0.1", 0), ("127.0.0.1", 0)))
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.activator.stop())
        self.loop.close()

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the activator's loop and return its result."""
        done = threading.Event()
        box: list = []

        def run() -> None:
            try:
                box.append(fn(*args))
            finally:
                done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)
        return box[0] if box else None

    # -- conveniences -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.activator.port

    @property
    def admin_port(self) -> int:
        return self.activator.admin_port

    def set_endpoints(self, policy: str, addresses: list[str]) -> None:
        self.source.set(policy, [Endpoint.parse(a) for a in addresses])

    def stats(self) -> dict:
        return json.loads(admin_get(self.admin_port, "/v1/stats")[1])

    def route_stats(self, policy: str = "app") -> dict:
        return self.stats()["routes"][policy]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.005)
        raise AssertionError(f"timed out waiting for {what}")

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def request(self, method: str, path: str, *, host: str = "app.test", body=None,
                headers: dict | None = None, timeout: float = 10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)


def admin_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class PokeReceiver:
    """The daemon's end of a poke: records each POST body and when it arrived."""

    def __init__(self, status: int = 202, delay: float = 0.0) -> None:
        self.pokes: list[tuple[float, str, dict]] = []
        self.status = status
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.pokes.append((time.monotonic(), self.path, json.loads(body)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> PokeReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_routes(path: Path, routes: list[dict]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"routes": routes}, sort_keys=False))
    return path


class ActivatorProcess:
    """``python -m scaler.activator`` as its own process, logging JSON lines: with a routes
    file, or with ``option="--policy"`` and a policy file or directory."""

    def __init__(self, routes_file: Path, *, extra: list[str] = (), cpu: int | None = None,
                 env: dict[str, str] | None = None, option: str = "--routes",
                 command: list[str] | None = None) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        cmd = [*(command or [sys.executable, "-m", "scaler.activator"]), option,
               str(routes_file),
               "--listen", f"127.0.0.1:{self.port}",
               "--admin-listen", f"127.0.0.1:{self.admin_port}", *extra]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.cmd = cmd
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.lines: list[dict] = []
        self._reader: threading.Thread | None = None

    def __enter__(self) -> ActivatorProcess:
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=self.env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda: any(line.get("event") == "activator started"
                                  for line in self.lines), 15, "activator started")
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"event": "unparsed", "text": line})

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"activator exited ({self.process.returncode}) before "
                                     f"{what}: {self.process.stderr.read()}")
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stats(self) -> dict:
        return json.loads(admin_get(self.admin_port, "/v1/stats")[1])

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()
