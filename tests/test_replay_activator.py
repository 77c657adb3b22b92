"""Replay with the activator in the policy: demand at zero ready replicas is held (up to
maxPendingRequests, for at most timeout) and served when a replica is ready, not lost.

The hold is worked out by hand on per-second tables (scaler.replay.report.held); the
summary, its text and summary.json are checked on small replays; both engines give the
same hold (a property test)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaler.cli import main
from scaler.policy import Policy
from scaler.policy.model import ActivatorPolicy
from scaler.replay.engine import replay
from scaler.replay.report.held import hold
from scaler.replay.report.summary import summarize

from test_replay import both_engines, policies, recordings

NAN = math.nan
BASE = 1_000_000_000


def held(demand, ready, max_pending=1000, timeout=60.0):
    return hold(np.array(demand, dtype=np.float64), np.array(ready), max_pending=max_pending,
                timeout=timeout)


# --------------------------------------------------------------------------------------
# The hold, second by second


def test_demand_at_zero_waits_for_the_first_ready_second_and_is_served_then():
    h = held([0, 2, 1, 0, 4, 0], [0, 0, 0, 1, 1, 1])
    # 2 requests arrive mid-second 1 and wait 1.5 s, 1 arrives mid-second 2 and waits 0.5 s
    assert (h.delayed, h.wait_total, h.wait_max) == (3.0, 3.5, 1.5)
    assert h.wait_p99 == 1.5 and h.lost == 0 and h.peak_pending == 3.0
    # served in second 3, on top of its own demand (none); second 4 keeps its 4
    assert h.served.tolist() == [0, 0, 0, 3, 4, 0]


def test_the_p99_wait_is_weighted_by_requests():
    # 99 requests wait 0.5 s, 1 waits 9.5 s: p99 is 0.5 s, the longest 9.5 s
    demand = [1] + [0] * 8 + [99, 0]
    h = held(demand, [0] * 10 + [1])
    assert h.delayed == 100 and h.wait_p99 == 0.5 and h.wait_max == 9.5
    h = held([2] + [0] * 8 + [98, 0], [0] * 10 + [1])
    assert h.wait_p99 == 9.5          # 2 % waited 9.5 s


def test_beyond_max_pending_requests_overflow_and_are_lost():
    h = held([0, 2, 3, 0], [0, 0, 0, 1], max_pending=4)
    assert (h.delayed, h.overflowed, h.timed_out) == (4.0, 1.0, 0.0)
    assert h.peak_pending == 4.0 and h.served.tolist() == [0, 0, 0, 4]


def test_a_request_waiting_longer_than_the_timeout_is_lost_and_leaves_the_queue():
    # Ready from second 5; room for 1. The request of second 1 would wait 3.5 s: past
    # the timeout (504). With a 2 s timeout it is still held at 3.5 s (it goes at
    # 1.5 + 2 s), so the request of second 3 overflows, and the one of second 4 finds
    # the queue free again and waits 0.5 s.
    h = held([0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1], max_pending=1, timeout=2.0)
    assert (h.timed_out, h.overflowed, h.delayed) == (1.0, 1.0, 1.0)
    assert h.wait_total == 0.5 and h.served.tolist() == [0, 0, 0, 0, 0, 1]
    # With 1.9 s it has gone at 3.4 s: second 3's request is held (1.5 s), second 4's
    # overflows.
    h = held([0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1], max_pending=1, timeout=1.9)
    assert (h.timed_out, h.overflowed, h.delayed) == (1.0, 1.0, 1.0)
    assert h.wait_total == 1.5


def test_each_stretch_at_zero_has_its_own_queue_and_unknown_seconds_bring_nothing():
    h = held([1, NAN, 0, 5, 1, 0, 2, 0], [0, 0, 1, 1, 0, 0, 0, 1], max_pending=2)
    # stretch 1: 1 request, served at 2; stretch 2: 1 + 2, room for 2 -> 1 overflows
    assert (h.delayed, h.overflowed) == (3.0, 1.0)
    assert np.isnan(h.served[1]) and h.served[[2, 3, 7]].tolist() == [1, 5, 2]


def test_requests_still_held_at_the_end_are_neither_served_nor_lost():
    h = held([0, 1, 3], [1, 0, 0], timeout=60.0)
    assert (h.delayed, h.held_at_end, h.lost) == (0.0, 4.0, 0.0)
    h = held([0, 1, 3], [1, 0, 0], timeout=1.0)     # 1 of them waited 2 s: past 1 s
    assert (h.timed_out, h.held_at_end) == (1.0, 3.0)


def test_no_demand_at_zero_holds_nothing():
    h = held([0, 3, 4], [0, 1, 1])
    assert (h.delayed, h.lost, h.peak_pending) == (0, 0, 0)
    assert h.served.tolist() == [0, 3, 4]


# --------------------------------------------------------------------------------------
# The summary

ACTIVATOR = ActivatorPolicy(service="api", port=8080, hosts=("api.example",),
                            max_pending_requests=1000, timeout=60.0)


def idle_then_load():
    """Scaled to zero (30 s grace), then 40 at 70 per replica for a minute."""
    values = np.concatenate([np.full(30, 10.0), np.zeros(120), np.full(60, 40.0),
                             np.zeros(10)])
    return BASE + np.arange(len(values), dtype=np.float64), values


def test_the_summary_counts_demand_held_at_zero_as_delayed_not_unserved():
    times, values = idle_then_load()
    plain = summarize(replay(Policy(), times, values, 10.0))
    with_activator = summarize(replay(replace(Policy(), activator=ACTIVATOR), times, values,
                                      10.0))
    assert "activator" not in plain
    a = with_activator["activator"]
    # the load at 150 s meets no replica: the tick at 150 scales up, ready at 160 — the
    # requests of seconds 150..159 are held, 40 each, and served at 160
    assert a["requests_delayed"] == 400.0
    assert a["wait_seconds_max"] == 9.5 and a["wait_seconds_p99"] == 9.5
    assert a["wait_seconds_total"] == pytest.approx(40 * sum(i + 0.5 for i in range(10)))
    assert a["requests_timed_out"] == a["requests_overflowed"] == 0
    assert (a["max_pending_requests"], a["timeout_seconds"]) == (1000, 60.0)
    # without the activator those 400 demand-seconds were unserved; with it the 400
    # held requests land on the first replica at 160 (capacity 100): 340 short then
    assert plain["under_provisioned_demand_seconds"] == 400.0
    assert with_activator["under_provisioned_demand_seconds"] == 340.0
    # short: the 10 seconds at zero without it; with it only the second of the release
    assert plain["under_provisioned_share"] * 220 == pytest.approx(10.0)
    assert with_activator["under_provisioned_share"] * 220 == pytest.approx(1.0)
    # the same replicas, the same cold start, the same recorded demand
    for key in ("pod_seconds", "cold_start_episodes", "cold_start_seconds", "demand_seconds"):
        assert with_activator[key] == plain[key], key


def test_what_the_activator_loses_stays_unserved():
    times, values = idle_then_load()
    tight = replace(ACTIVATOR, max_pending_requests=100, timeout=5.0)
    s = summarize(replay(replace(Policy(), activator=tight), times, values, 10.0))
    a = s["activator"]
    # room for 100 held for at most 5 s; served at 160: the requests of 150..154 would
    # wait longer than 5 s (504), and while they are held the queue is full (503):
    # 150: 40 held, 151: 40, 152: 20 (+20 over), 153-155: 120 over; at 156 150's 40 have
    # gone (156 - 150 > 5): 40 held (3.5 s), 157: 40 (2.5 s), 158: 20 (1.5 s, +20 over),
    # 159: 40 over
    assert (a["requests_timed_out"], a["requests_overflowed"], a["requests_delayed"]) == (
        100.0, 200.0, 100.0)
    assert a["wait_seconds_max"] == 3.5 and a["peak_pending_requests"] == 100.0
    lost = a["requests_overflowed"] + a["requests_timed_out"]
    assert s["under_provisioned_demand_seconds"] >= lost


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings(), policies(), st.sampled_from([0.0, 5.5, 30.0]),
       st.sampled_from([1, 50, 1000]), st.sampled_from([1.0, 10.0, 60.0]))
def test_both_engines_hold_alike(recording, policy, startup_delay, max_pending, timeout):
    if policy.activation_replicas and policy.activation_replicas < policy.min_replicas:
        policy = replace(policy, activation_replicas=0)
    policy = replace(policy, activator=replace(ACTIVATOR, max_pending_requests=max_pending,
                                               timeout=timeout))
    times, values = recording
    both = both_engines(policy, times, values, startup_delay)
    if both is None:
        return
    fast, slow = (summarize(r) for r in both)
    assert fast["activator"] == slow["activator"]
    assert fast["under_provisioned_demand_seconds"] == slow["under_provisioned_demand_seconds"]
    a = fast["activator"]
    lost = a["requests_timed_out"] + a["requests_overflowed"]
    assert a["wait_seconds_max"] <= timeout and a["peak_pending_requests"] <= max_pending
    assert min(a["requests_delayed"], lost, a["requests_held_at_end"]) >= 0


# --------------------------------------------------------------------------------------
# The command


def test_replay_reports_the_hold_in_the_table_and_summary_json(tmp_path, capsys):
    times, values = idle_then_load()
    recording = tmp_path / "r.csv"
    recording.write_text("timestamp,value\n" + "".join(
        f"{int(t)},{v:g}\n" for t, v in zip(times, values)))
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({
        "apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"name": "api"}, "metric": {"query": "sum(x)"},
                 "activator": {"service": "api", "port": 8080, "hosts": ["api.example"],
                               "maxPendingRequests": 1000, "timeout": "60s"}}}))
    out = tmp_path / "out"
    assert main(["replay", str(recording), "--policy", str(policy), "--out", str(out),
                 "--startup-delay", "10", "--no-chart"]) == 0
    stdout = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["activator"]["requests_delayed"] == 400.0
    [line] = [line for line in stdout.splitlines() if line.startswith("activator")]
    assert "400.0 requests held at zero and served" in line
    assert "p99 9.5 s" in line and "0.0 timed out, 0.0 overflowed" in line
