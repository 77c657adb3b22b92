"""Missing data is never zero, end to end: the real Prometheus scraping exporters that go
away, the project's fake Kubernetes API, and `scaler run` as its own process.

The observations this reproduces, each with a constant true load of 50 against a target
of 10 per replica — 5 replicas is right, and any count below 5 is a wrong scale-down:

* the scrape target gone for 3 s, with a 6 s stable window (it went 5 → 3 → 4 → 5);
* gone for 30 s, with a 60 s window (5 → 3, and back to 5 only 48 s later);
* a flaky target, refused 2 s of every 7 (5 → 4, and it stayed there);
* one NaN point (it froze the policy for a whole stable window).

A scrape that fails makes Prometheus mark the target's series stale, so the seconds of an
outage are missing from otherwise good range queries: the daemon must count them as
unknown, never as zero load, and decide again within a couple of ticks of clean data.

All four run side by side — one Prometheus, one exporter per target, one daemon serving
four policies — because the 60 s windows first sit out Knative's start-up panic (a
decider that starts with 5 ready replicas holds them for a stable window).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from support.daemon import DaemonProcess, write_kubeconfig, write_policy
from support.exporter import LoadExporter
from support.fakekube import FakeKubeAPIServer, deployment
from support.faultmatrix import ROWS, Row
from support.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

LOAD, RIGHT = 50.0, 5   # 50 in flight at 10 per replica
SCENARIOS = {
    # name: (stable window, tick interval)
    "short": ("6s", "1s"),      # gone 3 s
    "outage": ("60s", "2s"),    # gone 30 s
    "flaky": ("60s", "2s"),     # refused 2 s of every 7
    "nan": ("60s", "2s"),       # one NaN, then the load triples
}
AFTER_START_PANIC = 66.0        # seconds after the daemon starts: the 60 s panic is over


@pytest.fixture(scope="module")
def exporters() -> Iterator[dict[str, LoadExporter]]:
    started = {name: LoadExporter().start() for name in SCENARIOS}
    try:
        for name, exporter in started.items():
            exporter.set(f"{name}_load", LOAD)
        yield started
    finally:
        for exporter in started.values():
            exporter.stop()


@pytest.fixture(scope="module")
def prometheus(exporters) -> Iterator[PrometheusServer]:
    targets = [e.target for e in exporters.values()]
    with PrometheusServer(targets, wait_for=f"count(up == 1) == {len(targets)}") as server:
        server.every_target_up = time.time()
        yield server


def wait_for_history(prometheus: PrometheusServer, seconds: int = 8) -> float:
    """A whole second by which every exporter's series has ``seconds`` of history."""
    time.sleep(max(0.0, prometheus.every_target_up + seconds + 2 - time.time()))
    return float(int(time.time()) - 1)


@pytest.mark.parametrize("query, reason, unknown", [
    # +Inf at every even second (12.5 / 0): those seconds are unknown, the rest is a load.
    pytest.param("sum(nan_load) / (vector(time()) % 2)", "inf", lambda s: s % 2 == 0,
                 id="inf-every-other-second"),
    # NaN every third second.
    pytest.param("sum(nan_load) * ((vector(time()) % 3 > 0) > bool 0 or vector(0/0))", "nan",
                 lambda s: s % 3 == 0, id="nan-every-third-second"),
    # The series absent every third second: a gap inside a good answer.
    pytest.param("sum(nan_load) unless on() (vector(time()) % 3 == 0)", None,
                 lambda s: s % 3 == 0, id="missing-every-third-second"),
])
def test_a_per_second_answer_names_its_unknown_seconds(prometheus, query, reason, unknown):
    from scaler.sources.prometheus import PrometheusSource

    end = wait_for_history(prometheus)
    with PrometheusSource(prometheus.url) as source:
        reading = source.read(query, end - 8, end, deadline=time.monotonic() + 5)
    assert reading.ok, reading
    seconds = range(int(end) - 8, int(end) + 1)
    assert list(reading.unknown) == [s for s in seconds if unknown(s)]
    assert [int(t) for t, _ in reading.samples] == [s for s in seconds if not unknown(s)]
    assert {v for _, v in reading.samples} == {LOAD}
    assert reading.left_out == reason
    if reason:
        assert reason.replace("inf", "infinite").replace("nan", "NaN") in reading.detail


class Outage:
    """When a scenario's target was refused and when it came back (wall clock)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def refuse(self, exporter: LoadExporter, seconds: float) -> None:
        exporter.refuse()
        gone = time.time()
        time.sleep(seconds)
        exporter.resume()
        self.spans.append((gone, time.time()))


def wrong_scale_downs(daemon: DaemonProcess, policy: str) -> list[dict]:
    return [t for t in daemon.ticks(policy) if t["replicas"] < RIGHT]


def first_decision_after(daemon: DaemonProcess, policy: str, since: float) -> dict | None:
    return next((t for t in daemon.ticks(policy) if t["t"] >= since
                 and t["decider"] is not None), None)


FAULTS = {
    "short": "the scrape target gone 3 s (stable window 6 s)",
    "outage": "the scrape target gone 30 s (stable window 60 s)",
    "flaky": "the scrape target refused 2 s of every 7, six times",
    "nan": "one NaN point, then the load triples",
}


def add_fault_matrix_rows(daemon: DaemonProcess, outages: dict[str, Outage],
                          writes: list, tripled: float) -> None:
    """This file's observations as rows of the fault matrix printed at the end of the run
    (the test asserts them below, one by one)."""
    for name, fault in FAULTS.items():
        ticks = daemon.ticks(name)
        wrong = sum(1 for w in writes if f"/{name}/" in w.path
                    and (w.body or {}).get("spec", {}).get("replicas", RIGHT) < RIGHT)
        wrong += len(wrong_scale_downs(daemon, name))
        seen = (f"{sum(t['unknown'] for t in ticks)} unknown seconds over {len(ticks)} ticks, "
                f"{sum(t['decider'] is None for t in ticks)} held")
        if name in outages and outages[name].spans and name != "flaky":
            gone, back = outages[name].spans[-1]
            resumed = first_decision_after(daemon, name, back)
            if resumed is not None:
                seen += f", deciding again {resumed['t'] - back:.1f} s after its return"
        if name == "nan":
            scaled = next((t for t in ticks if t["t"] >= tripled
                           and t["replicas"] >= 3 * RIGHT), None)
            seen += (f", at {3 * RIGHT} replicas {scaled['t'] - tripled:.1f} s after the load "
                     "tripled" if scaled else f", never at {3 * RIGHT} replicas")
        ROWS.append(Row(fault, "unknown seconds, never zero load: no scale-down below "
                               f"{RIGHT}; decisions resume within a couple of ticks"
                               + (", the rise followed" if name == "nan" else ""),
                        seen, wrong_scale_downs=wrong))


def test_missing_seconds_never_scale_down_and_decisions_resume(tmp_path, exporters,
                                                               prometheus):
    with FakeKubeAPIServer() as kube:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url)
        policies = tmp_path / "policies"
        for name, (stable, tick) in SCENARIOS.items():
            kube.create(deployment(name, replicas=RIGHT))
            write_policy(policies, name, f"sum({name}_load)", target=10,
                         targetUtilizationPercentage=100, stableWindow=stable,
                         tickInterval=tick, initialReplicas=RIGHT)
        outages = {name: Outage() for name in ("short", "outage", "flaky")}
        with DaemonProcess(policies, prometheus.url, kubeconfig) as daemon:
            started = time.time()
            # The short window's start-up panic is over after 6 s: gone 3 s at 15 s.
            time.sleep(15)
            outages["short"].refuse(exporters["short"], 3)

            time.sleep(max(0.0, started + AFTER_START_PANIC - time.time()))
            assert not daemon.ticks("outage")[-1]["panic_mode"], "still in start-up panic"
            def flap() -> None:   # refused 2 s of every 7, six times
                for _ in range(6):
                    outages["flaky"].refuse(exporters["flaky"], 2)
                    time.sleep(5)

            flaky = threading.Thread(target=flap)
            flaky.start()
            exporters["nan"].set("nan_load", float("nan"))
            time.sleep(1.2)
            exporters["nan"].set("nan_load", 3 * LOAD)
            tripled = time.time()
            outages["outage"].refuse(exporters["outage"], 30)
            flaky.join()
            time.sleep(12)   # clean data again everywhere: watch the recovery
            nan_seen = [e for e in daemon.lines if e.get("policy") == "nan"
                        and e.get("reason") == "nan"]
        writes = kube.requests_to("PATCH", r"/deployments/[a-z]+/scale")
        add_fault_matrix_rows(daemon, outages, writes, tripled)

        for name in ("short", "outage", "flaky"):
            ticks = daemon.ticks(name)
            assert len(ticks) > 30, name
            # 0 wrong scale-downs: neither decided nor written.
            assert wrong_scale_downs(daemon, name) == [], name
            assert not [w for w in writes if f"/{name}/" in w.path
                        and (w.body or {}).get("spec", {}).get("replicas", RIGHT) < RIGHT], name
            assert kube.get("Deployment", name)["spec"]["replicas"] == RIGHT, name
            # The target really went away: missing seconds were seen as unknown.
            assert sum(t["unknown"] for t in ticks) >= 2, name

        # Decisions resume within a couple of ticks of the target's return (the first
        # scrape after it comes up to a second later, then the tick's evaluation delay).
        for name, tick in (("short", 1.0), ("outage", 2.0)):
            gone, back = outages[name].spans[-1]
            assert any(t["decider"] is None for t in daemon.ticks(name)
                       if gone + 1 < t["t"] < back), f"{name}: the outage was not noticed"
            resumed = first_decision_after(daemon, name, back)
            assert resumed is not None and resumed["t"] <= back + 1 + 2 * tick, (name, resumed)
            assert resumed["stable"] == pytest.approx(LOAD), (name, resumed)

        # Flaky: 2 s of every 7 unknown is a minority of every stable window — it keeps
        # deciding, on the known seconds' average.
        calm = [t for t in daemon.ticks("flaky") if t["t"] > started + AFTER_START_PANIC]
        decided = [t for t in calm if t["decider"] is not None]
        assert len(decided) >= 0.5 * len(calm), (len(decided), len(calm))
        assert {t["stable"] for t in decided} == {LOAD}

        # One NaN point is one unknown second, not a frozen policy: the tripled load
        # (15 replicas) is followed within a few ticks, not a stable window later.
        assert nan_seen, "the NaN point was never reported"
        scaled = next((t for t in daemon.ticks("nan")
                       if t["t"] >= tripled and t["replicas"] >= 3 * RIGHT), None)
        assert scaled is not None and scaled["t"] <= tripled + 8, scaled
        assert wrong_scale_downs(daemon, "nan") == []
