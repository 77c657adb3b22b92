"""Load for the activator's tests and benchmarks: Debian's ``hey``, and a small ingress.

:func:`hey` runs the real load generator (one request per row of its CSV; a request that
failed has no row). :class:`Ingress` stands in for an ingress controller in front of
several activators: worker threads send requests round robin over the upstreams that are
alive, on keep-alive connections. A connection refused means the request never reached
that upstream: the ingress drops it (as it would once the endpoint is removed) and sends
the request to another one, so the client sees nothing. A request that was sent and then
lost its connection is a failure the client sees, counted per upstream.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
from collections import Counter

HEY = shutil.which("hey")


def hey(url: str, *, n: int, c: int, host: str = "app.test", timeout: int = 30,
        background: bool = False):
    assert HEY, "Debian's hey is not installed (scripts/bootstrap --test installs it)"
    cmd = [HEY, "-n", str(n), "-c", str(c), "-host", host, "-t", str(timeout), "-o", "csv", url]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return parse(subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30).stdout)


def parse(csv: str) -> list[tuple[float, int]]:
    """(response time in seconds, status) per request; a request that failed is absent."""
    rows = []
    for line in csv.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) >= 7 and fields[6].isdigit():
            rows.append((float(fields[0]), int(fields[6])))
    return rows


def parse_rows(csv: str) -> list[dict]:
    """hey's CSV as dicts: seconds, status and offset (when the request started, relative
    to the run's start)."""
    rows = []
    for line in csv.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) >= 8 and fields[6].isdigit():
            rows.append({"seconds": float(fields[0]), "status": int(fields[6]),
                         "offset": float(fields[7])})
    return rows


class Ingress:
    def __init__(self, upstreams: list[tuple[str, int]], *, workers: int = 8,
                 path: str = "/id", host: str = "app.test", timeout: float = 10.0) -> None:
        self.alive = list(upstreams)
        self.workers = workers
        self.path = path
        self.host = host
        self.timeout = timeout
        self.ok: Counter = Counter()
        self.failed: Counter = Counter()
        self.statuses: Counter = Counter()
        self.dropped: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._threads = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(workers)]

    def __enter__(self) -> Ingress:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _pick(self) -> tuple[str, int] | None:
        with self._lock:
            if not self.alive:
                return None
            self._next = (self._next + 1) % len(self.alive)
            return self.alive[self._next]

    def _drop(self, upstream: tuple[str, int]) -> None:
        with self._lock:
            if upstream in self.alive:
                self.alive.remove(upstream)
                self.dropped.append(upstream)

    def _work(self) -> None:
        connections: dict[tuple[str, int], http.client.HTTPConnection] = {}
        while not self._stop.is_set():
            upstream = self._pick()
            if upstream is None:
                time.sleep(0.01)
                continue
            conn = connections.get(upstream)
            if conn is None:
                conn = http.client.HTTPConnection(*upstream, timeout=self.timeout)
                try:
                    conn.connect()
                except OSError:
                    self._drop(upstream)          # never reached it: the ingress moves on
                    continue
                connections[upstream] = conn
            try:
                conn.request("GET", self.path, headers={"Host": self.host})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connections.pop(upstream, None)
                conn.close()
                with self._lock:
                    self.failed[upstream] += 1    # it was on that upstream when it went
                self._drop(upstream)
                continue
            with self._lock:
                self.ok[upstream] += 1
                self.statuses[response.status] += 1
        for conn in connections.values():
            conn.close()
