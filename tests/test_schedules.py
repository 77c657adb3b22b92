"""spec.schedules: replica floors by the clock, DST-correct, in the daemon's pipeline and in
replay (both engines), with clear errors for bad expressions and zones."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
import yaml

from scaler.decide import schedules
from scaler.decide.pipeline import PolicyScaler
from scaler.policy import Policy, PolicyError, Schedule, parse_policies
from scaler.replay.engine import replay, replay_per_tick

BERLIN = "Europe/Berlin"
WORKDAYS = Schedule("0 8 * * 1-5", 10 * 3600, 3, BERLIN)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _policy(schedules_yaml: list, **spec) -> Policy:
    doc = {"apiVersion": "scaler/v1", "kind": "ScalingPolicy", "metadata": {"name": "p"},
           "spec": {"scaleTargetRef": {"name": "web"}, "metric": {"query": "q"},
                    "schedules": schedules_yaml, **spec}}
    [policy] = parse_policies(yaml.safe_dump(doc), "p.yaml")
    return policy


def _errors(schedules_yaml, **spec) -> list[str]:
    with pytest.raises(PolicyError) as err:
        _policy(schedules_yaml, **spec)
    return err.value.errors


# ---- parsing

def test_the_issue_example_parses():
    p = _policy([{"cron": "0 8 * * 1-5", "duration": "10h", "minReplicas": 3,
                  "timezone": BERLIN}])
    assert p.schedules == (WORKDAYS,)
    assert p.describe().endswith(', at least 3 from "0 8 * * 1-5" Europe/Berlin for 10h')
    assert _policy([{"cron": "0 8 * * *", "duration": "1h", "minReplicas": 1}]).schedules[0] \
        .timezone == "UTC"


@pytest.mark.parametrize("item,words", [
    ({"cron": "61 * * * *", "duration": "1h", "minReplicas": 1},
     "spec.schedules[0].cron: '61 * * * *' is not a cron expression: Bad minute"),
    ({"cron": "0 8 * *", "duration": "1h", "minReplicas": 1},
     "spec.schedules[0].cron: '0 8 * *' is not a cron expression: 4 fields"),
    ({"cron": "0 8 * * *", "duration": "1h", "minReplicas": 1, "timezone": "Europe/Berln"},
     "spec.schedules[0].timezone: 'Europe/Berln' is not a time zone (an IANA name such as "
     "Europe/Berlin or UTC); did you mean Europe/Berlin?"),
    ({"cron": "0 8 * * *", "duration": "30s", "minReplicas": 1},
     "spec.schedules[0].duration: '30s' is out of range (allowed: 1m..7d)"),
    ({"cron": "0 8 * * *", "duration": "8d", "minReplicas": 1},
     "spec.schedules[0].duration: '8d' is out of range (allowed: 1m..7d)"),
    ({"cron": "0 8 * * *", "minReplicas": 1}, "spec.schedules[0].duration: is required"),
    ({"cron": "0 8 * * *", "duration": "1h"}, "spec.schedules[0].minReplicas: is required"),
    ({"cron": "0 8 * * *", "duration": "1h", "minReplicas": -1},
     "spec.schedules[0].minReplicas: -1 is out of range"),
    ({"cron": "0 8 * * *", "duration": "1h", "minReplica": 1},
     "spec.schedules[0].minReplica: unknown key; did you mean minReplicas?"),
])
def test_bad_schedules_name_the_key(item, words):
    errors = _errors([item])
    assert any(words in e for e in errors), errors


def test_a_schedule_floor_above_max_replicas_is_refused():
    errors = _errors([{"cron": "0 8 * * *", "duration": "1h", "minReplicas": 9}],
                     maxReplicas=5)
    assert any("spec.schedules[0].minReplicas: 9 is above spec.maxReplicas 5" in e
               for e in errors)


# ---- evaluation: windows, the highest floor, DST

def test_inside_and_outside_the_workday_window():
    # Monday 2026-03-02, CET (UTC+1): 08:00-18:00 local is 07:00-17:00 UTC.
    assert schedules.active((WORKDAYS,), at("2026-03-02T06:59:59+00:00")) == (0, None)
    assert schedules.active((WORKDAYS,), at("2026-03-02T07:00:00+00:00")) == (3, WORKDAYS)
    assert schedules.active((WORKDAYS,), at("2026-03-02T16:59:59+00:00")) == (3, WORKDAYS)
    assert schedules.active((WORKDAYS,), at("2026-03-02T17:00:00+00:00")) == (0, None)
    # Saturday: no window.
    assert schedules.active((WORKDAYS,), at("2026-03-07T10:00:00+00:00")) == (0, None)


def test_the_highest_open_floor_wins():
    lunch = Schedule("0 12 * * *", 3600, 7, BERLIN)
    both = (WORKDAYS, lunch)
    assert schedules.active(both, at("2026-03-02T11:30:00+00:00")) == (7, lunch)
    assert schedules.active(both, at("2026-03-02T12:00:00+00:00")) == (3, WORKDAYS)


def test_spring_forward_keeps_the_wall_clock_and_the_elapsed_duration():
    # 2026-03-29: Berlin goes from 02:00 CET to 03:00 CEST. Sunday: a daily schedule.
    daily = Schedule("0 8 * * *", 10 * 3600, 2, BERLIN)
    # 08:00 CEST is 06:00 UTC (the day before it was 07:00 UTC).
    assert schedules.active((daily,), at("2026-03-28T06:30:00+00:00")) == (0, None)
    assert schedules.active((daily,), at("2026-03-29T06:00:00+00:00"))[0] == 2
    assert schedules.active((daily,), at("2026-03-29T15:59:59+00:00"))[0] == 2
    assert schedules.active((daily,), at("2026-03-29T16:00:00+00:00"))[0] == 0
    # 02:30 does not exist that night: it fires at 03:00 CEST (01:00 UTC), as cron does.
    night = Schedule("30 2 * * *", 3600, 4, BERLIN)
    opens = [o for o, _ in schedules.windows(night, at("2026-03-28T00:00:00+00:00"),
                                             at("2026-03-30T00:00:00+00:00"))]
    assert opens == [at("2026-03-28T01:30:00+00:00"), at("2026-03-29T01:00:00+00:00")]
    assert schedules.active((night,), at("2026-03-29T00:59:00+00:00"))[0] == 0
    assert schedules.active((night,), at("2026-03-29T01:00:00+00:00"))[0] == 4


def test_fall_back_fires_once_and_lasts_its_elapsed_duration():
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    night = Schedule("30 2 * * *", 3600, 4, BERLIN)
    opens = [o for o, _ in schedules.windows(night, at("2026-10-24T12:00:00+00:00"),
                                             at("2026-10-26T12:00:00+00:00"))]
    # Once, at the first 02:30 (CEST, 00:30 UTC); the next night at 02:30 CET (01:30 UTC).
    assert opens == [at("2026-10-25T00:30:00+00:00"), at("2026-10-26T01:30:00+00:00")]
    assert schedules.active((night,), at("2026-10-25T01:29:59+00:00"))[0] == 4
    assert schedules.active((night,), at("2026-10-25T01:30:00+00:00"))[0] == 0
    # A daily 08:00 window that night is 08:00 CET = 07:00 UTC, ten hours long.
    daily = Schedule("0 8 * * *", 10 * 3600, 2, BERLIN)
    assert schedules.active((daily,), at("2026-10-25T06:59:59+00:00"))[0] == 0
    assert schedules.active((daily,), at("2026-10-25T16:59:59+00:00"))[0] == 2
    assert schedules.active((daily,), at("2026-10-25T17:00:00+00:00"))[0] == 0


def test_the_floor_series_is_the_tick_by_tick_floor_across_both_dst_nights():
    both = (WORKDAYS, Schedule("30 2 * * *", 3600, 4, BERLIN))
    for start, end in (("2026-03-26", "2026-04-01"), ("2026-10-22", "2026-10-28")):
        ticks = np.arange(at(f"{start}T00:00:00+00:00"), at(f"{end}T00:00:00+00:00"), 60,
                          dtype=np.int64)
        series = schedules.floor_series(both, ticks)
        one_by_one = [schedules.active(both, float(t))[0] for t in ticks]
        assert series.tolist() == one_by_one
        assert set(one_by_one) == {0, 3, 4}


# ---- in the pipeline and in replay

def test_the_pipeline_raises_the_floor_inside_a_window_only():
    p = replace(Policy(), schedules=(WORKDAYS,), min_replicas=1)
    scaler = PolicyScaler(p)
    inside, outside = at("2026-03-02T08:00:00+00:00"), at("2026-03-02T18:00:00+00:00")
    for t in range(int(inside) - 120, int(inside)):
        scaler.record(t, 10.0)          # a load one replica serves
    r = scaler.tick(inside, 1, 1)
    assert (r.replicas, r.schedule_floor, r.schedule) == (3, 3, "0 8 * * 1-5 Europe/Berlin")
    scaler = PolicyScaler(p)
    for t in range(int(outside) - 120, int(outside)):
        scaler.record(t, 10.0)
    r = scaler.tick(outside, 1, 1)
    assert (r.replicas, r.schedule_floor, r.schedule) == (1, 0, None)


def test_both_replay_engines_apply_the_schedules_alike():
    start = at("2026-03-02T06:00:00+00:00")      # Monday, two hours across 07:00 UTC
    times = np.arange(start, start + 7200, dtype=np.float64)
    values = np.full(times.size, 10.0)
    p = replace(Policy(), schedules=(WORKDAYS,))
    fast, slow = replay(p, times, values), replay_per_tick(p, times, values)
    assert np.array_equal(fast.desired, slow.desired)
    opens = np.searchsorted(fast.ticks, at("2026-03-02T07:00:00+00:00"))
    assert fast.desired[opens - 1] == 1 and fast.desired[opens:].min() == 3
    assert fast.schedule_floor is not None and fast.schedule_floor[opens:].min() == 3


def test_the_daemons_tick_line_names_the_open_schedule():
    from prometheus_client import CollectorRegistry
    from structlog.testing import capture_logs

    from scaler.clock import ManualClock
    from scaler.daemon.loop import Daemon
    from scaler.daemon.observability import Metrics
    from scaler.sources.recording import RecordingSource
    from scaler.sources.recording import load as load_recording
    from test_loop import InMemoryTarget

    start = 1_772_409_600                          # Monday 2026-03-02 00:00 UTC
    p = replace(Policy(), schedules=(Schedule("0 0 * * 1-5", 3600, 5, "UTC"),))
    clock = ManualClock(start + 120)
    daemon = Daemon([p], source=RecordingSource(load_recording("scaler/recordings/default.csv")),
                    actuator=InMemoryTarget(1), clock=clock,
                    metrics=Metrics(CollectorRegistry()))
    with capture_logs() as logs:
        daemon.run_once()
    [tick] = [e for e in logs if e["event"] == "tick"]
    assert (tick["schedule"], tick["schedule_floor"], tick["replicas"]) == ("0 0 * * 1-5 UTC",
                                                                           5, 5)
