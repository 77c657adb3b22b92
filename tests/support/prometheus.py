"""The real Prometheus (Debian's ``prometheus`` package), started and stopped by tests.

    with LoadExporter() as exporter, PrometheusServer([exporter.target]) as prometheus:
        exporter.set("app_inflight_requests", 12.5)
        prometheus.url            # http://127.0.0.1:<free port>

The server scrapes its targets every second, listens only on 127.0.0.1, keeps its data in a
temporary directory, and is stopped by PID. ``backfill`` (OpenMetrics text, see
:func:`openmetrics`) is turned into TSDB blocks with promtool before the first start, so
hours of recorded load are queryable at once, without waiting for scrapes.

Start-up is bounded by Prometheus's scrape manager, which applies targets on a 5 s tick:
``/-/ready`` answers within ~0.05 s, the first sample arrives ~6 s after exec. Hence one
server per test module (the module-scoped fixtures ``load_exporter`` and ``prometheus``
in tests/conftest.py) and never one per test.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar



T = TypeVar("T")

INSTALL_HINT = "install it with `apt-get install prometheus` (CI's .ci/run does)"


class PrometheusNotInstalled(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (Prometheus cannot report a port 0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """One Prometheus process with a 1 s scrape of ``targets``.

    ``wait_for`` is a PromQL query that must return a sample before :meth:`start` returns
    (default ``up == 1``: every target has been scraped once); ``None`` waits only for
    ``/-/ready``. ``ready_after`` and ``first_sample_after`` record the start-up cost.
    """

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        wait_for: str | None = "up == 1",
        admin_api: bool = False,
        binary: str = "prometheus",
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        backfill: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.backfill = backfill
        self.wait_for = wait_for if self.targets else None
        self.admin_api = admin_api
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.port = free_port()
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._spawned_at = 0.0
        self.ready_after: float | None = None
        self.first_sample_after: float | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("Prometheus is not running")
        return self._process.pid

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("Prometheus has not been started")
        return self._dir / "data"

    def start(self) -> Self:
        executable = shutil.which(self.binary)
        if executable is None:
            raise PrometheusNotInstalled(
                f"Prometheus binary {self.binary!r} not found on PATH; {INSTALL_HINT}"
            )
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="scaler-prometheus-"))
            (self._dir / "data").mkdir()
            self._write_config()
            if self.backfill is not None:
                self._write_blocks(executable, self.backfill)
        self._spawn(executable)
        if self.wait_for is not None:
            self.wait_for_sample(self.wait_for)
            self.first_sample_after = time.monotonic() - self._spawned_at
        return self

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it has not exited within ``stop_timeout``."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=self.stop_timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL by PID: an outage, without the clean shutdown's WAL flush and checkpoint."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=self.stop_timeout)
        self._reap()

    def restart(self, *, wait_for_fresh_scrape: bool = True) -> Self:
        """Start again on the same port and data dir (after :meth:`kill` or :meth:`stop`).

        Data from before the outage is replayed from the WAL. With ``wait_for_fresh_scrape``
        this returns only once a target has been scraped after the restart (~6 s).
        """
        self.stop()
        restarted_at = time.time()
        executable = shutil.which(self.binary)
        assert executable is not None
        self._spawn(executable)
        if wait_for_fresh_scrape and self.targets:
            self.wait_for_sample(f"timestamp(up) > {restarted_at:.3f}")
        return self

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- queries (stdlib only, so the harness never depends on the code under test) ------

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result``."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._api("/api/v1/query", params)["data"]["result"]

    def query_range(self, promql: str, start: float, end: float, step: float = 1.0) -> list:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        return self._api("/api/v1/query_range", params)["data"]["result"]

    def wait_for_sample(self, promql: str, timeout: float | None = None) -> list[dict[str, Any]]:
        """Poll until ``promql`` returns at least one sample; fail with the log tail."""
        give_up = time.monotonic() + (timeout or self.start_timeout)
        while True:
            self._check_alive()
            try:
                result = self.query(promql)
            except (urllib.error.URLError, ConnectionError):
                result = []
            if result:
                return result
            if time.monotonic() > give_up:
                raise TimeoutError(
                    f"no sample for {promql!r} after {timeout or self.start_timeout:.0f} s\n"
                    + self.log_tail()
                )
            time.sleep(0.1)

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        if self._dir is None or not (self._dir / "prometheus.log").exists():
            return ""
        text = (self._dir / "prometheus.log").read_text(errors="replace").splitlines()
        return "Prometheus log (tail):\n" + "\n".join(text[-lines:])

    # -- internals ---------------------------------------------------------------------

    def _write_config(self) -> None:
        assert self._dir is not None
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "load",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        # JSON is valid YAML, and keeps the harness free of a YAML dependency.
        (self._dir / "prometheus.yml").write_text(json.dumps(config, indent=2))

    def _write_blocks(self, executable: str, text: str) -> None:
        assert self._dir is not None
        promtool = shutil.which("promtool", path=str(Path(executable).parent)) or shutil.which(
            "promtool")
        if promtool is None:
            raise PrometheusNotInstalled(f"promtool not found next to {executable}; {INSTALL_HINT}")
        source = self._dir / "backfill.om"
        source.write_text(text)
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source),
             str(self._dir / "data")],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool backfill failed:\n{done.stdout}{done.stderr}")

    def _spawn(self, executable: str) -> None:
        assert self._dir is not None
        args = [
            executable,
            f"--config.file={self._dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self._dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *(["--web.enable-admin-api"] if self.admin_api else []),
            *self.extra_args,
        ]
        # Open for as long as the process runs; closed in _reap().
        self._log = open(self._dir / "prometheus.log", "ab")  # noqa: SIM115
        began = self._spawned_at = time.monotonic()
        self._process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
        )
        give_up = began + self.start_timeout
        while not self.is_ready():
            self._check_alive()
            if time.monotonic() > give_up:
                self.stop()
                raise TimeoutError(f"Prometheus not ready after {self.start_timeout:.0f} s\n"
                                   + self.log_tail())
            time.sleep(0.02)
        self.ready_after = time.monotonic() - began

    def _check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            code = None if self._process is None else self._process.returncode
            raise RuntimeError(f"Prometheus exited (code {code})\n" + self.log_tail())

    def _reap(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _api(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)


Series = tuple[Mapping[str, str], Sequence[tuple[float, float]]]


def openmetrics(gauges: Mapping[str, Sequence[Series]]) -> str:
    """OpenMetrics text for promtool backfill: ``{name: [(labels, [(unix_s, value)])]}``."""
    lines = []
    for name, family in gauges.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, points in family:
            selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.extend(f"{name}{{{selector}}} {v!r} {t!r}" for t, v in points)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """Linux: SIGTERM Prometheus when the test process dies without tearing down (e.g.
    killed by a CI timeout), so no server outlives its tests."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def eventually(check: Callable[[], T], timeout: float = 15.0, interval: float = 0.2) -> T:
    """Call ``check`` until it returns a truthy value; fail with its last result.

    For conditions that depend on the next scrape (up to 1 s away) or on enough history
    (a few seconds), without fixed sleeps.
    """
    give_up = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > give_up:
            raise AssertionError(f"condition not met within {timeout:.0f} s; last: {result!r}")
        time.sleep(interval)


__all__ = [
    "INSTALL_HINT",
    "PrometheusNotInstalled",
    "PrometheusServer",
    "eventually",
    "free_port",
    "openmetrics",
]

