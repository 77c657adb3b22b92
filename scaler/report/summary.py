"""What a replay would have cost and where it would have fallen short.

Figures are integrated second by second over the replayed span [first tick, last tick +
tickInterval):

* demand at second s is the recorded load in that 1 s bucket (0 where nothing was
  recorded — the windows see the same zeros);
* ready capacity at s is ready replicas × ``target`` (the per-replica capacity), with a
  replica ready from its ready time until it is removed;
* provisioned replicas are the count set at each tick, held until the next tick.
"""

from __future__ import annotations

import math

import numpy as np

from scaler.policy import format_duration
from scaler.replay import ReplayResult


def per_second(result: ReplayResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(second timestamps, demand, ready replicas) over the replayed span."""
    if not len(result.ticks):
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64)
    start = int(result.ticks[0])
    end = int(math.ceil(result.end))
    n = end - start
    seconds = np.arange(start, end, dtype=np.int64)
    bucket = np.floor(result.times).astype(np.int64) - start
    inside = (bucket >= 0) & (bucket < n)
    demand = np.bincount(bucket[inside], weights=result.values[inside], minlength=n)
    lives = np.array(result.lifetimes, dtype=np.float64).reshape(-1, 2)
    # Ready at second s when ready_at <= s < removed_at.
    first = np.clip(np.ceil(lives[:, 0] - start), 0, n).astype(np.int64)
    last = np.clip(np.ceil(lives[:, 1] - start), 0, n).astype(np.int64)
    keep = first < last
    change = np.zeros(n + 1, dtype=np.int64)
    np.add.at(change, first[keep], 1)
    np.add.at(change, last[keep], -1)
    ready = np.cumsum(change[:-1])
    return seconds, demand, ready


def summarize(result: ReplayResult) -> dict:
    p = result.policy
    tick = p.tick_interval
    n = len(result.ticks)
    _, demand, ready = per_second(result)
    capacity = ready * p.target
    shortfall = np.maximum(demand - capacity, 0.0)
    short = demand > capacity
    cold = (demand > 0) & (ready == 0)
    cold_starts = int(np.count_nonzero(cold[1:] & ~cold[:-1]) + (1 if len(cold) and cold[0] else 0))
    previous = np.concatenate(([p.initial_replicas], result.desired[:-1]))
    actions = int(np.count_nonzero(result.desired != previous))
    needed = np.ceil(demand / p.target_value)
    return {
        "recording": {"samples": int(len(result.times)),
                      "first": float(result.times[0]) if len(result.times) else None,
                      "last": float(result.times[-1]) if len(result.times) else None},
        "policy": p.name,
        "startup_delay_seconds": result.startup_delay,
        "duration_seconds": n * tick,
        "ticks": n,
        "ticks_without_data": int(np.count_nonzero(np.isnan(result.stable))),
        "pod_seconds": float(result.desired.sum() * tick),
        "mean_replicas": float(result.desired.mean()) if n else 0.0,
        "peak_replicas": int(max(p.initial_replicas, int(result.desired.max(initial=0)))),
        "under_provisioned_demand_seconds": float(shortfall.sum()),
        "under_provisioned_share": float(short.mean()) if len(short) else 0.0,
        "wasted_pod_seconds": float(np.maximum(ready - needed, 0).sum()),
        "cold_start_episodes": cold_starts,
        "cold_start_seconds": int(np.count_nonzero(cold)),
        "scaling_actions": actions,
        "panic_seconds": float(np.count_nonzero(result.in_panic) * tick),
        "demand_seconds": float(demand.sum()),
    }


def format_table(summary: dict, title: str) -> str:
    """A readable terminal table of the summary."""
    s = summary
    rows = [
        ("duration", f"{format_duration(s['duration_seconds'])} ({s['ticks']:,} ticks, "
                     f"{s['ticks_without_data']:,} without data)"),
        ("pod-seconds", f"{s['pod_seconds']:,.0f} (mean {s['mean_replicas']:.2f} replicas, "
                        f"peak {s['peak_replicas']})"),
        ("under-provisioned", f"{s['under_provisioned_demand_seconds']:,.1f} demand-seconds, "
                              f"{s['under_provisioned_share'] * 100:.2f}% of the time"),
        ("wasted pod-seconds", f"{s['wasted_pod_seconds']:,.0f}"),
        ("cold starts", f"{s['cold_start_episodes']} episodes, {s['cold_start_seconds']:,} s "
                        "with demand and no ready replica"),
        ("scaling actions", f"{s['scaling_actions']:,}"),
        ("time in panic", format_duration(s["panic_seconds"])),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)
