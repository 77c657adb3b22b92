"""Scale from zero end to end, measured with real parts on 127.0.0.1: ``scaler run`` and
``scaler activator --policy`` as processes, the fake Kubernetes API, real backends whose
endpoints are published one second after their replicas exist (tests/support/pods.py),
Debian's ``hey``, and the real Prometheus for the policies that read PromQL.

    python benchmarks/activator_e2e.py [--trials 20] [--promql-trials 10] [--burst 1000]
                                       [--bursts 3] [--panic-trials 5] [--startup 1.0]

* **Cold start** (``--trials`` policies, each at zero, one request each): the first
  response's latency against the start-up delay (target: start-up + 250 ms, p99), and the
  scale PATCH's arrival at the API after the request was sent (target: 200 ms, p99). The
  same with ``--promql-trials`` policies whose load is a PromQL query that still reads 0
  (the poke alone brings them up).
* **Lossless**: ``--bursts`` times, ``hey -n 1000 -c 1000`` at a policy at zero: every
  request answered 200.
* **Panic**: ``--panic-trials`` warm policies (the activator's counts, 1 s ticks) under a
  steady 5 requests in flight each meet 150 more: time from the burst's start to the
  scale-up PATCH.
* **Warm path**: the serve/proxy switch, and requests straight to a pod against the same
  requests through the activator (the hop ``whenNeeded`` saves).
* **Faults**: the daemon killed (a warm policy still served; at zero a 504 that says why),
  an activator killed mid-load (only its requests fail), overflow and timeout.
* **Memory**: each activator's RSS idle and while holding the burst.

Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.backends import rss_mib  # noqa: E402
from support.cluster import Cluster, policy  # noqa: E402
from support.exporter import LoadExporter  # noqa: E402
from support.load import Ingress, hey, parse_rows  # noqa: E402
from support.prometheus import PrometheusServer  # noqa: E402

TARGET_FIRST_RESPONSE_MS = 250       # over the start-up delay
TARGET_PATCH_MS = 200
QUERY = "sum(app_inflight_requests)"    # a gauge that reads 0 throughout


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def cold_starts(cluster: Cluster, names: list[str]) -> list[dict]:
    """One request to each policy at zero, one after the other."""
    out = []
    for name in names:
        assert cluster.replicas(name) == 0, name
        sent = time.time()
        began = time.monotonic()
        status, _h, _body = cluster.get(f"{name}.test", "/id", timeout=30)
        latency = time.monotonic() - began
        patch = cluster.wait_for(lambda: cluster.scale_patches(name), 5, f"{name} patched")[0]
        out.append({"policy": name, "status": status, "first_response_s": latency,
                    "patch_after_s": patch.received - sent})
    return out


def summarize_cold(trials: list[dict], startup: float) -> dict:
    first = [t["first_response_s"] for t in trials]
    patch = [t["patch_after_s"] for t in trials]
    return {"trials": len(trials), "statuses": sorted({t["status"] for t in trials}),
            "first_response_p50_ms": round(statistics.median(first) * 1000, 1),
            "first_response_p99_ms": round(p99(first) * 1000, 1),
            "over_startup_p99_ms": round((p99(first) - startup) * 1000, 1),
            "patch_p50_ms": round(statistics.median(patch) * 1000, 1),
            "patch_p99_ms": round(p99(patch) * 1000, 1)}


def bursts(cluster: Cluster, names: list[str], burst: int) -> list[dict]:
    out = []
    for name in names:
        peak = [0.0]
        stop = threading.Event()

        def watch_rss():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mib(cluster.activator.process.pid))
                time.sleep(0.05)
        watcher = threading.Thread(target=watch_rss, daemon=True)
        watcher.start()
        load = hey(f"http://127.0.0.1:{cluster.activator.port}/id", n=burst, c=burst,
                   host=f"{name}.test", timeout=60, background=True)
        holding = 0.0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            routes = cluster.stats()["routes"]
            if routes[name]["pending"] >= burst * 0.9:
                holding = rss_mib(cluster.activator.process.pid)
                break
            time.sleep(0.02)
        text, _err = load.communicate(timeout=120)
        stop.set()
        watcher.join()
        rows = parse_rows(text)
        first = min(rows, key=lambda r: r["offset"]) if rows else None
        out.append({"policy": name, "answered": len(rows),
                    "ok": sum(1 for r in rows if r["status"] == 200),
                    "first_response_s": first and first["seconds"],
                    "slowest_s": max((r["seconds"] for r in rows), default=None),
                    "rss_holding_mib": round(holding, 1), "rss_peak_mib": round(peak[0], 1)})
    return out


def panic_reactions(cluster: Cluster, names: list[str]) -> dict:
    """Each policy: steady 5 in flight, then 150 more: seconds from the burst's first
    request to the scale-up write."""
    cluster.wait_for(lambda: all(cluster.pods.ready(n) >= 1 for n in names), 15, "warm")
    steady = [Ingress([("127.0.0.1", cluster.activator.port)], workers=5,
                      path="/id?delay=0.2", host=f"{n}.test").__enter__() for n in names]
    trials = []
    try:
        time.sleep(12)                                 # the stable window sees the steady load
        for name in names:
            before = len(cluster.scale_patches(name))
            replicas = cluster.replicas(name)
            began = time.time()
            with Ingress([("127.0.0.1", cluster.activator.port)], workers=150,
                         path="/id?delay=0.2", host=f"{name}.test"):
                patch = cluster.wait_for(lambda: cluster.scale_patches(name)[before:], 10,
                                         "the scale-up")[0]
                time.sleep(0.5)
            trials.append({"reaction_s": round(patch.received - began, 3),
                           "replicas_before": replicas, "replicas_after": cluster.replicas(name)})
    finally:
        for load in steady:
            load.stop()
    reactions = [t["reaction_s"] for t in trials]
    return {"trials": trials, "reaction_median_s": statistics.median(reactions),
            "reaction_max_s": max(reactions)}


def warm_path(cluster: Cluster, name: str, n: int = 400) -> dict:
    side, endpoints = cluster.wait_for(lambda: (s := cluster.public(name))[0] == "serve" and s,
                                       15, "the switch to the pods")
    _host, port = endpoints[0]
    import http.client

    def timed(p: int) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
        out = []
        for _ in range(n):
            began = time.perf_counter()
            conn.request("GET", "/id", headers={"Host": f"{name}.test"})
            conn.getresponse().read()
            out.append(time.perf_counter() - began)
        conn.close()
        return out
    before = cluster.stats()["routes"][name]["requests"]
    direct = timed(port)
    through_activator_counted = cluster.stats()["routes"][name]["requests"] - before
    via = timed(cluster.activator.port)
    return {"side": side, "direct_p50_ms": round(statistics.median(direct) * 1000, 3),
            "via_activator_p50_ms": round(statistics.median(via) * 1000, 3),
            "direct_requests_seen_by_activator": through_activator_counted}


def faults(cluster: Cluster, warm: str, cold: str, tiny: str) -> dict:
    result: dict = {}
    # Overflow and timeout.
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(
        cluster.get(f"{tiny}.test", "/id", timeout=10))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result["overflow_timeout_statuses"] = sorted(s for s, _h, _b in answers)
    result["retry_after"] = sorted({h.get("Retry-After") for _s, h, _b in answers})
    result["counted"] = {o: cluster.activator_metric("scaler_activator_requests_total",
                                                     policy=tiny, outcome=o)
                         for o in ("rejected", "timed_out")}
    # An activator killed mid-load.
    second = cluster.start_activator()
    ups = [("127.0.0.1", cluster.activator.port), ("127.0.0.1", second.port)]
    with Ingress(ups, workers=16, path="/id?delay=0.1", host=f"{warm}.test") as ingress:
        cluster.wait_for(lambda: sum(ingress.ok.values()) > 100, 10, "load")
        in_flight = cluster.stats(second)["routes"][warm]["in_flight"]
        second.process.send_signal(signal.SIGKILL)
        cluster.wait_for(lambda: ingress.dropped, 5, "dropped")
        served = sum(ingress.ok.values())
        cluster.wait_for(lambda: sum(ingress.ok.values()) > served + 200, 10, "load on")
    cluster.activators.remove(second)
    result["killed_activator"] = {"in_flight_on_it": in_flight,
                                  "failed": sum(ingress.failed.values()),
                                  "failed_on_survivor": ingress.failed[ups[0]],
                                  "ok": sum(ingress.ok.values())}
    # The daemon killed.
    cluster.daemon.kill()
    status, _h, _b = cluster.get(f"{warm}.test", "/id")
    began = time.monotonic()
    zstatus, _h, body = cluster.get(f"{cold}.test", "/id", timeout=60)
    result["daemon_down"] = {"warm_status": status, "zero_status": zstatus,
                             "zero_waited_s": round(time.monotonic() - began, 2),
                             "zero_body": body.decode().strip()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--promql-trials", type=int, default=10)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--startup", type=float, default=1.0)
    parser.add_argument("--panic-trials", type=int, default=5)
    args = parser.parse_args()

    cold = [f"cold{i}" for i in range(args.trials)]
    prom = [f"prom{i}" for i in range(args.promql_trials)]
    burst = [f"burst{i}" for i in range(args.bursts)]
    # The cold and burst policies keep the activator in the path (mode always): the client
    # sends to the activator itself, as the public Service would at zero.
    policies = {n: policy(n, maxReplicas=2, activator={"timeout": "30s", "mode": "always"})
                for n in cold}
    # Their load from PromQL, a query that still reads 0: only the poke brings them up.
    policies.update({n: policy(n, source="prometheus", query=QUERY, maxReplicas=2,
                               activator={"mode": "always", "timeout": "30s"}) for n in prom})
    policies.update({n: policy(n, target=100, maxReplicas=4, activator={
        "timeout": "60s", "maxPendingRequests": args.burst, "mode": "always"}) for n in burst})
    # Out of the path when warm: one pod at least, served directly.
    policies["warm"] = policy("warm", source="prometheus", query=QUERY, targetBurstCapacity=0,
                              minReplicas=1, maxReplicas=2)
    panic = [f"panic{i}" for i in range(args.panic_trials)]
    policies.update({n: policy(n, target=10, minReplicas=1, maxReplicas=30,
                               activator={"mode": "always"}) for n in panic})
    policies["tiny"] = policy("tiny", maxReplicas=1, activator={
        "timeout": "1s", "maxPendingRequests": 3, "mode": "always"})
    policies["stays"] = policy("stays", maxReplicas=1, activator={"timeout": "3s",
                                                                   "mode": "always"})
    simulate = {n: n for n in policies if n not in ("tiny", "stays")}
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_average": [round(x, 2) for x in os.getloadavg()]},
                    "startup_s": args.startup}
    ok = True
    with tempfile.TemporaryDirectory() as tmp, LoadExporter() as exporter:
        exporter.set("app_inflight_requests", 0.0)
        with PrometheusServer([exporter.target]) as prometheus:
            prometheus.wait_for_sample("app_inflight_requests")
            with Cluster(Path(tmp), policies, simulate=simulate, startup=args.startup,
                         prometheus_url=prometheus.url) as cluster:
                cluster.wait_for(lambda: cluster.public("warm")[0] is not None, 30,
                                 "the warm policy's public slice written")
                time.sleep(2)
                report["rss_idle_mib"] = {
                    "activator": round(rss_mib(cluster.activator.process.pid), 1),
                    "daemon": round(rss_mib(cluster.daemon.process.pid), 1)}
                report["cold_start"] = summarize_cold(cold_starts(cluster, cold),
                                                      args.startup)
                if prom:
                    report["cold_start_promql"] = summarize_cold(cold_starts(cluster, prom),
                                                                 args.startup)
                report["lossless"] = bursts(cluster, burst, args.burst)
                report["warm_path"] = warm_path(cluster, "warm")
                report["panic"] = panic_reactions(cluster, panic)
                report["faults"] = faults(cluster, panic[0], "stays", "tiny")
    print(json.dumps(report, indent=2))
    checks = []
    for key in ("cold_start", "cold_start_promql"):
        if key in report:
            c = report[key]
            checks.append((f"{key}: first response p99 within start-up + "
                           f"{TARGET_FIRST_RESPONSE_MS} ms",
                           c["over_startup_p99_ms"] <= TARGET_FIRST_RESPONSE_MS
                           and c["statuses"] == [200]))
            checks.append((f"{key}: scale PATCH p99 within {TARGET_PATCH_MS} ms",
                           c["patch_p99_ms"] <= TARGET_PATCH_MS))
    checks.append(("lossless: every request of every burst answered 200",
                   all(b["ok"] == args.burst for b in report["lossless"])))
    checks.append(("warm whenNeeded: no request through the activator",
                   report["warm_path"]["direct_requests_seen_by_activator"] == 0))
    f = report["faults"]
    checks.append(("killed activator: none failed on the survivor",
                   f["killed_activator"]["failed_on_survivor"] == 0))
    checks.append(("daemon down: warm 200, zero 504",
                   (f["daemon_down"]["warm_status"], f["daemon_down"]["zero_status"])
                   == (200, 504)))
    checks.append(("activator RSS idle <= 60 MiB", report["rss_idle_mib"]["activator"] <= 60))
    checks.append(("activator RSS holding <= 100 MiB",
                   all(b["rss_peak_mib"] <= 100 for b in report["lossless"])))
    for text, passed in checks:
        print(f"{'met   ' if passed else 'MISSED'}  {text}")
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
