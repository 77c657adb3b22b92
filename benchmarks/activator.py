"""The activator's data plane, measured: warm-path added latency at 1,000 req/s, the most
requests per second one activator process serves on one core, its memory idle and holding
1,000 requests, and a lossless cold start (1,000 concurrent requests at zero, endpoints
after 1 s).

Real parts on 127.0.0.1: ``python -m scaler.activator`` as its own process pinned to CPU 0
(taskset); a minimal keep-alive backend and the load generator (Debian's ``wrk`` for rates
and latency, ``hey`` for the cold-start burst) pinned to CPU 1. Direct and through-the-
activator runs alternate in one sitting against the same backend, so the noise of a shared
machine falls on both.

    python benchmarks/activator.py [--seconds 10] [--pairs 3] [--runs 3] [--compare-aiohttp]
                                   [--realtime]

``--compare-aiohttp`` also measures a minimal aiohttp reverse proxy (web server +
ClientSession, streaming both ways) the same way: the reason the activator parses HTTP
itself. The machine is shared: the script reports how long the activator waited for its
CPU while other work ran on its core; ``--realtime`` (diagnosis only) takes those waits out.
Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.activator import ActivatorProcess, write_routes  # noqa: E402
from support.backends import fast_backend_process, rss_mib  # noqa: E402
from support.prometheus import free_port  # noqa: E402

ACTIVATOR_CPU, LOAD_CPU = 0, 1
HOST = "app.bench"
REALTIME = ["chrt", "-f", "10"]
TARGET_ADDED_P50_MS = 0.5
TARGET_ADDED_P99_MS = 2.0
TARGET_RATE = 5000
TARGET_RSS_IDLE_MIB = 60
TARGET_RSS_HOLDING_MIB = 100

# Each connection waits a random 5-15 ms before its next request: 10 connections make about
# 1,000 req/s, spread out rather than in lock-step bursts.
PACED = """
math.randomseed(os.time())
function delay() return math.random(5, 15) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d p50=%d p99=%d max=%d\\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""

AIOHTTP_PROXY = r'''
import asyncio, sys, aiohttp
from aiohttp import web
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
UPSTREAM = "http://127.0.0.1:%s" % sys.argv[2]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "content-length"}
async def forward(request):
    async with request.app["session"].request(
            request.method, UPSTREAM + request.rel_url.raw_path_qs, headers=request.headers,
            data=request.content if request.can_read_body else None,
            allow_redirects=False, auto_decompress=False) as answer:
        response = web.StreamResponse(status=answer.status, headers={
            k: v for k, v in answer.headers.items() if k.lower() not in HOP})
        if answer.content_length is not None:
            response.content_length = answer.content_length
        await response.prepare(request)
        async for data in answer.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response
async def app():
    application = web.Application()
    application["session"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    application.router.add_route("*", "/{path:.*}", forward)
    return application
web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        sys.exit(f"error: {tool} is not installed (apt-get install -y {tool})")
    return path


def wrk_command(url: str, *, seconds: float, connections: int, script: Path | None) -> list:
    cmd = ["taskset", "-c", str(LOAD_CPU), need("wrk"), "-t1", f"-c{connections}",
           f"-d{seconds:g}s", "-H", f"Host: {HOST}", url]
    if script is not None:
        cmd[-1:-1] = ["-s", str(script)]
    return cmd


def wrk_result(out: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result = {"rate": rate}
    match = re.search(r"RESULT (.*)", out)
    if match:
        result.update({k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())})
    else:
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                           r"timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        result["errors"] = sum(map(int, errors.groups())) if errors else 0
        result["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


def wrk(url: str, *, seconds: float, connections: int, script: Path | None) -> dict:
    cmd = wrk_command(url, seconds=seconds, connections=connections, script=script)
    return wrk_result(subprocess.run(cmd, capture_output=True, text=True,
                                     timeout=seconds + 60).stdout)


def preempted(pid: int) -> int:
    """Times the process was switched out while it could run: other work on its core."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def runqueue_wait(pid: int) -> float:
    """Seconds the process spent ready to run but waiting for its CPU (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_activator(tmp: Path, endpoints: list[str], realtime: bool = False
                    ) -> ActivatorProcess:
    routes = write_routes(tmp / "routes.yaml", [{
        "policy": "app", "port": 8080, "hosts": [HOST], "maxPendingRequests": 2000,
        "timeout": "60s", "endpoints": endpoints}])
    activator = ActivatorProcess(routes, cpu=ACTIVATOR_CPU)
    if realtime:
        activator.cmd = [*REALTIME, *activator.cmd]
    return activator.__enter__()


def start_aiohttp_proxy(backend_port: int, realtime: bool = False
                       ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([*(REALTIME if realtime else []), "taskset", "-c",
                                str(ACTIVATOR_CPU), sys.executable, "-c",
                                AIOHTTP_PROXY, str(port), str(backend_port)],
                               stderr=subprocess.DEVNULL)   # wrk's hang-ups at the end
    deadline = time.monotonic() + 15
    import socket
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the aiohttp proxy did not start")


def warm_path(backend_port: int, proxy_port: int, args, script: Path) -> dict:
    """Paced direct and proxied runs side by side (two wrk processes at once, so whatever
    else the machine does falls on both); added = proxied − direct, per pair."""
    pairs = []
    for _ in range(args.pairs):
        runs = [subprocess.Popen(wrk_command(f"http://127.0.0.1:{port}/", seconds=args.seconds,
                                             connections=10, script=script),
                                 stdout=subprocess.PIPE, text=True)
                for port in (backend_port, proxy_port)]
        direct, proxied = (wrk_result(run.communicate(timeout=args.seconds + 60)[0])
                           for run in runs)
        pairs.append((direct, proxied))
    p50 = statistics.median((b["p50"] - a["p50"]) / 1000 for a, b in pairs)
    p99 = statistics.median((b["p99"] - a["p99"]) / 1000 for a, b in pairs)
    return {"pairs": pairs, "added_p50_ms": p50, "added_p99_ms": p99,
            "errors": sum(b["errors"] + b["non2xx"] for _, b in pairs)}


def max_rate(pid: int, proxy_port: int, seconds: float) -> dict:
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    result = wrk(f"http://127.0.0.1:{proxy_port}/", seconds=seconds, connections=64,
                 script=None)
    result["cpu"] = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    return result


def hey_burst(port: int, n: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", str(LOAD_CPU), need("hey"), "-n", str(n), "-c", str(n), "-t", "60",
         "-host", HOST, "-o", "csv", f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cold_start(tmp: Path, n: int, startup: float) -> dict:
    """n concurrent requests at zero; the endpoints are published ``startup`` s after the
    burst starts (the backend is already listening: readiness is what arrives late)."""
    backend, backend_port = fast_backend_process(cpu=LOAD_CPU)
    activator = start_activator(tmp, [])
    try:
        pid = activator.process.pid
        time.sleep(0.5)
        idle = rss_mib(pid)
        load = hey_burst(activator.port, n)
        started = time.monotonic()
        activator.wait_for(lambda: activator.stats()["routes"]["app"]["pending"] >= n, 30,
                           f"{n} held requests")
        holding = rss_mib(pid)
        write_routes(tmp / "routes.yaml", [{
            "policy": "app", "port": 8080, "hosts": [HOST], "maxPendingRequests": 2000,
            "timeout": "60s", "endpoints": [f"127.0.0.1:{backend_port}"]}])
        time.sleep(max(0.0, startup - (time.monotonic() - started)))
        activator.signal(signal.SIGHUP)
        published = time.monotonic() - started
        out, _ = load.communicate(timeout=120)
        rows = []
        for line in out.splitlines()[1:]:
            f = line.split(",")
            if len(f) >= 8:
                rows.append({"seconds": float(f[0]), "status": int(f[6]), "offset": float(f[7])})
        stats = activator.stats()["routes"]["app"]
        first = min(rows, key=lambda r: r["offset"]) if rows else None
        return {"ok": sum(r["status"] == 200 for r in rows), "answers": len(rows),
                "lost": n - len(rows), "first_s": first["seconds"] if first else None,
                "max_s": max(r["seconds"] for r in rows) if rows else None,
                "published_s": published,
                "idle_mib": idle, "holding_mib": holding, "peak_mib": rss_mib(pid, "VmHWM"),
                "requests": stats["requests"], "in_flight_after": stats["in_flight"]}
    finally:
        activator.stop()
        backend.terminate()
        backend.wait()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    try:
        import httptools
        import uvloop
        libs = f"uvloop {uvloop.__version__}, httptools {httptools.__version__}"
    except ImportError:
        libs = "no uvloop"
    return (f"{os.cpu_count()} cores ({cpu}), {platform.platform(terse=True)}, "
            f"CPython {platform.python_version()}, {libs}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--pairs", type=int, default=3, help="direct/proxied latency pairs")
    parser.add_argument("--runs", type=int, default=3, help="cold-start runs")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--startup", type=float, default=1.0)
    parser.add_argument("--compare-aiohttp", action="store_true")
    parser.add_argument("--realtime", action="store_true",
                        help="diagnosis on a shared machine: run the proxies under chrt -f "
                             "(as root) so other work on their core cannot delay them; shows "
                             "what the proxy itself adds")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs 2 CPUs (the activator on one, backend and load on the other)")
    print(f"machine: {machine()}")
    print(f"load average before the runs: {Path('/proc/loadavg').read_text().split()[0]} "
          "(other work on the machine competes with the pinned processes)")
    if args.realtime:
        print("the proxies run under chrt -f (FIFO priority): their waits for the CPU are "
              "taken out, to show what they add themselves")
    failures = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        script = tmp / "paced.lua"
        script.write_text(PACED)
        backend, backend_port = fast_backend_process(cpu=LOAD_CPU)
        try:
            activator = start_activator(tmp, [f"127.0.0.1:{backend_port}"], args.realtime)
            try:
                pid = activator.process.pid
                time.sleep(0.5)
                idle_rss = rss_mib(pid)
                switches, waited = preempted(pid), runqueue_wait(pid)
                warm = warm_path(backend_port, activator.port, args, script)
                warm["preempted"] = preempted(pid) - switches
                warm["waited"] = runqueue_wait(pid) - waited
                rate = max_rate(pid, activator.port, args.seconds)
                warm_rss = rss_mib(pid)
            finally:
                activator.stop()
            compare = None
            if args.compare_aiohttp:
                proxy, proxy_port = start_aiohttp_proxy(backend_port, args.realtime)
                try:
                    waited = runqueue_wait(proxy.pid)
                    compare_warm = warm_path(backend_port, proxy_port, args, script)
                    compare_warm["waited"] = runqueue_wait(proxy.pid) - waited
                    compare = (compare_warm, max_rate(proxy.pid, proxy_port, args.seconds))
                finally:
                    proxy.terminate()
                    proxy.wait()
        finally:
            backend.terminate()
            backend.wait()
        colds = [cold_start(tmp, args.burst, args.startup) for _ in range(args.runs)]

    print("\nwarm path at ~1,000 req/s (two wrk at once, direct and through, 10 connections "
          f"each, paced), {args.pairs} pairs x {args.seconds:g} s:")
    for direct, proxied in warm["pairs"]:
        print(f"  direct {direct['rate']:7.0f} req/s p50 {direct['p50'] / 1000:.3f} ms "
              f"p99 {direct['p99'] / 1000:.3f} ms | through {proxied['rate']:7.0f} req/s "
              f"p50 {proxied['p50'] / 1000:.3f} ms p99 {proxied['p99'] / 1000:.3f} ms")
    print(f"  added latency (median of pairs): p50 {warm['added_p50_ms']:.3f} ms "
          f"(target <= {TARGET_ADDED_P50_MS}), p99 {warm['added_p99_ms']:.3f} ms "
          f"(target <= {TARGET_ADDED_P99_MS}); errors {warm['errors']}")
    proxied = sum(b["requests"] for _, b in warm["pairs"])
    print(f"  other work on the activator's core: it was preempted {warm['preempted']:,} "
          f"times and waited {warm['waited']:.2f} s for its CPU in all "
          f"({warm['waited'] / max(1, proxied) * 1e6:.0f} us per request on average)")
    print(f"max rate through one activator on one core (wrk, 64 connections, "
          f"{args.seconds:g} s): {rate['rate']:,.0f} req/s at {rate['cpu'] * 100:.0f}% "
          f"of a core, {rate['rate'] / rate['cpu']:,.0f} per CPU-second; errors "
          f"{rate['errors'] + rate['non2xx']} (target >= {TARGET_RATE:,})")
    if compare:
        cw, cr = compare
        print(f"aiohttp reverse proxy, same runs: added p50 {cw['added_p50_ms']:.3f} ms, "
              f"p99 {cw['added_p99_ms']:.3f} ms; max {cr['rate']:,.0f} req/s at "
              f"{cr['cpu'] * 100:.0f}% of a core, {cr['rate'] / cr['cpu']:,.0f} per "
              f"CPU-second; in the latency runs it waited {cw['waited']:.2f} s for its CPU")
    print(f"RSS: idle {idle_rss:.1f} MiB (target <= {TARGET_RSS_IDLE_MIB}), after the warm "
          f"runs {warm_rss:.1f} MiB")
    print(f"cold start: {args.burst} concurrent requests at zero, endpoints published "
          f"{args.startup:g} s after the burst began ({args.runs} runs):")
    for c in colds:
        print(f"  200s {c['ok']}/{args.burst}, lost {c['lost']}, endpoints at "
              f"{c['published_s']:.3f} s, first request "
              f"{c['first_s']:.3f} s, slowest {c['max_s']:.3f} s, RSS idle "
              f"{c['idle_mib']:.1f} MiB, holding {c['holding_mib']:.1f} MiB, peak "
              f"{c['peak_mib']:.1f} MiB")

    if warm["added_p50_ms"] > TARGET_ADDED_P50_MS or warm["added_p99_ms"] > TARGET_ADDED_P99_MS:
        failures.append("warm-path added latency")
    if warm["errors"]:
        failures.append("errors on the warm path")
    if rate["rate"] < TARGET_RATE or rate["errors"] + rate["non2xx"]:
        failures.append("max rate")
    if idle_rss > TARGET_RSS_IDLE_MIB or any(c["idle_mib"] > TARGET_RSS_IDLE_MIB
                                             for c in colds):
        failures.append("idle RSS")
    if any(c["holding_mib"] > TARGET_RSS_HOLDING_MIB for c in colds):
        failures.append("RSS holding requests")
    if any(c["ok"] != args.burst or c["lost"] or c["in_flight_after"] for c in colds):
        failures.append("lossless cold start")
    print("\nresult: " + ("all targets met" if not failures
                          else "MISSED: " + ", ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
