"""The daemon's weight: resident memory after a minute of steady ticking, and the time
from process start to its first decision (warm-start range query included).

Starts what the tests start — Debian's Prometheus scraping a load exporter every second,
and the project's fake Kubernetes API — then runs `scaler run` with one policy
(prediction off, default windows, 2 s ticks) as its own process, and reads its
/proc/PID/status. Also checks that scipy was never loaded (no scipy shared object mapped).
With --prediction the policy has the default forecast floor on (seasonal-level, numpy
only: scipy must still never load; Prometheus holds only seconds of history, so this is
the import and steady cost, not a 14-day warm start).

    python benchmarks/daemon_weight.py [--seconds 60] [--runs 3] [--prediction]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.daemon import DaemonProcess, write_kubeconfig, write_policy  # noqa: E402
from support.exporter import LoadExporter  # noqa: E402
from support.fakekube import FakeKubeAPIServer, deployment  # noqa: E402
from support.prometheus import PrometheusServer  # noqa: E402

TARGET_RSS_MIB = 80
TARGET_FIRST_DECISION_S = 1.5


def status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def scipy_mapped(pid: int) -> bool:
    # numpy bundles a "libscipy_openblas"; scipy itself lives in site-packages/scipy/.
    return "site-packages/scipy/" in Path(f"/proc/{pid}/maps").read_text()


def one_run(seconds: float, prometheus: PrometheusServer, kubeconfig: Path,
            policies: Path) -> dict:
    with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
        pid = daemon.process.pid
        first = daemon.wait_for(lambda: daemon.ticks(), 30, "first decision")[0]
        first_decision = time.monotonic() - daemon.started_at
        assert first["action"] in ("scaled", "none"), first
        time.sleep(seconds)
        ticks = len(daemon.ticks())
        return {"first_decision_s": first_decision, "rss_mib": status_mib(pid, "VmRSS"),
                "peak_rss_mib": status_mib(pid, "VmHWM"), "ticks": ticks,
                "scipy": scipy_mapped(pid)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prediction", action="store_true",
                        help="the policy with the default forecast floor on (seasonal-level)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LoadExporter() as exporter, \
            FakeKubeAPIServer() as kube:
        tmp_path = Path(tmp)
        exporter.set("app_inflight_requests", 150.0)
        with PrometheusServer([exporter.target]) as prometheus:
            kube.create(deployment("app", replicas=1))
            kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url)
            policies = tmp_path / "policies"
            extra = {"prediction": {"enabled": True, "horizon": "60s"}} if args.prediction \
                else {}
            write_policy(policies, "app", "sum(app_inflight_requests)", **extra)
            time.sleep(3)   # a few seconds of history for the warm start to read
            runs = [one_run(args.seconds, prometheus, kubeconfig, policies)
                    for _ in range(args.runs)]
    first = statistics.median(r["first_decision_s"] for r in runs)
    rss = max(r["rss_mib"] for r in runs)
    peak = max(r["peak_rss_mib"] for r in runs)
    print(f"runs: {len(runs)} x {args.seconds:g}s of steady ticking "
          f"({', '.join(str(r['ticks']) for r in runs)} ticks)")
    print(f"first decision after process start (median): {first:.2f} s "
          f"(target <= {TARGET_FIRST_DECISION_S} s)")
    print(f"resident memory after the run (max): {rss:.1f} MiB, peak {peak:.1f} MiB "
          f"(target <= {TARGET_RSS_MIB} MiB)")
    print(f"scipy loaded: {any(r['scipy'] for r in runs)}")
    ok = first <= TARGET_FIRST_DECISION_S and rss <= TARGET_RSS_MIB and not any(
        r["scipy"] for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
