"""Schedules: replica floors by the clock (``spec.schedules``). Pure: ``now`` is an argument.

A schedule ``{cron: "0 8 * * 1-5", duration: 10h, minReplicas: 3, timezone:
Europe/Berlin}`` opens a window each time its cron expression fires — read on the
zone's wall clock, as cron reads it — and keeps it open for ``duration`` of elapsed time.
Inside any window the policy's replica floor is the highest ``minReplicas`` among the open
ones (never below the policy's own minReplicas); outside every window it is the policy's
own. The floor goes where the forecast floor goes (``scaler.decide.pipeline``): under the
decider's count, before the min/max clamps, so a schedule never lowers a decision.

Daylight saving time is cron's (the cronsim library's, which follows Debian cron): on the
night the clocks go forward a firing time that does not exist (02:30 in Europe/Berlin)
fires at the first minute after the gap (03:00); on the night they go back a firing time
that happens twice fires once, at its first occurrence. A 10h window is ten hours of
elapsed time, also across those nights.

cronsim (MIT, a small pure-Python library, maintained with healthchecks.io) is used for
the expressions; croniter, the older choice, went through an unmaintained spell and
differs from cron on DST nights. Time zone data comes from zoneinfo (the system's, else
the tzdata package).
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from scaler.policy.model import Schedule

@lru_cache(maxsize=64)
def _zone(name: str):
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def _local(schedule: Schedule, t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc).astimezone(_zone(schedule.timezone))


def opened(schedule: Schedule, now: float) -> float | None:
    """Unix time at which the window open at ``now`` opened, or None when none is open.

    A window that opened at F is open at ``now`` when F <= now < F + duration, that is
    when the first firing after now − duration is at or before now. (Searched forwards:
    cronsim's forward iteration, strictly after its start, also handles the hour that
    happens twice when the clocks go back.)"""
    from cronsim import CronSim

    try:
        fired = next(CronSim(schedule.cron, _local(schedule, now - schedule.duration)))
    except StopIteration:
        return None
    t = fired.timestamp()
    # The check of the lower end too: on the night the clocks go forward cronsim may
    # yield the minute after the gap even when that is its start.
    return t if now - schedule.duration < t <= now else None


def active(schedules: tuple[Schedule, ...], now: float) -> tuple[int, Schedule | None]:
    """(the highest floor of the windows open at ``now``, the schedule that sets it); (0,
    None) when none is open."""
    best: tuple[int, Schedule | None] = (0, None)
    for schedule in schedules:
        if opened(schedule, now) is not None and (
                best[1] is None or schedule.min_replicas > best[0]):
            best = (schedule.min_replicas, schedule)
    return best


def windows(schedule: Schedule, start: float, end: float) -> list[tuple[float, float]]:
    """Every window of ``schedule`` open at some time in [start, end], as (opens,
    closes) unix times, in order."""
    from cronsim import CronSim

    out: list[tuple[float, float]] = []
    for fired in CronSim(schedule.cron, _local(schedule, start - schedule.duration)):
        t = fired.timestamp()
        if t > end:
            break
        if t > start - schedule.duration and (not out or t > out[-1][0]):
            out.append((t, t + schedule.duration))
    return out


def floor_series(schedules: tuple[Schedule, ...], ticks: np.ndarray) -> np.ndarray:
    """The schedules' floor at every tick (int64; 0 outside every window): what
    :func:`active` gives tick by tick, computed window by window."""
    import numpy as np

    floor = np.zeros(len(ticks), dtype=np.int64)
    if not len(ticks) or not schedules:
        return floor
    at = np.asarray(ticks, dtype=np.float64)
    for schedule in schedules:
        spans = np.array(windows(schedule, float(at[0]), float(at[-1])), dtype=np.float64)
        if not len(spans):
            continue
        # Ticks in [opens, closes) of any window: +1 where a window opens, -1 where it
        # closes, summed; the windows of one schedule may overlap.
        opens = np.searchsorted(at, spans[:, 0], side="left")
        closes = np.searchsorted(at, spans[:, 1], side="left")
        edges = np.zeros(len(at) + 1, dtype=np.int64)
        np.add.at(edges, opens, 1)
        np.add.at(edges, closes, -1)
        inside = np.cumsum(edges[:-1]) > 0
        np.maximum(floor, np.where(inside, schedule.min_replicas, 0), out=floor)
    return floor
