"""What a replay would have cost and where it would have fallen short.

Figures are integrated second by second over the replayed span [first tick, last tick +
tickInterval):

* demand at second s is the recorded load in that 1 s bucket, each row held over the
  seconds of its resolution as the windows saw it; at an unknown second (no row holds it)
  demand is unknown (NaN) and the second counts in no demand figure — not as zero;
* ready capacity at s is ready replicas × ``target`` (the per-replica capacity), with a
  replica ready from its ready time until it is removed;
* provisioned replicas are the count set at each tick, held until the next tick.
"""

from __future__ import annotations

import math

import numpy as np

from scaler.policy import format_duration
from scaler.replay.engine import ReplayResult


def per_second(result: ReplayResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(second timestamps, demand, ready replicas) over the replayed span; demand is NaN
    at the recording's unknown seconds.

    Computed once per result: the summary and decisions.csv's demand column both use it.
    """
    cached = result.cache.get("per_second")
    if cached is None:
        cached = result.cache["per_second"] = _per_second(result)
    return cached


def _per_second(result: ReplayResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    if len(result.unknown):
        gone = result.unknown - start
        demand[gone[(gone >= 0) & (gone < n)]] = np.nan
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
    held = None
    arrived = demand
    if p.activator is not None:
        # Demand at zero ready replicas is held by the activator and served later.
        from scaler.replay.report.held import hold

        held = hold(demand, ready, max_pending=p.activator.max_pending_requests,
                    timeout=p.activator.timeout)
        demand = held.served
    unknown = np.isnan(demand) if len(result.unknown) else None
    if unknown is not None:
        demand, ready_known = demand[~unknown], ready[~unknown]
        arrived = arrived[~unknown]
    else:
        ready_known = ready
    capacity = ready_known * p.target
    shortfall = np.maximum(demand - capacity, 0.0)
    short = demand > capacity
    # A stretch with demand and no ready replica; an unknown second neither starts nor
    # breaks one.
    cold = (arrived > 0) & (ready_known == 0)
    cold_starts = int(np.count_nonzero(cold[1:] & ~cold[:-1]) + (1 if len(cold) and cold[0] else 0))
    previous = np.concatenate(([p.initial_replicas], result.desired[:-1]))
    actions = int(np.count_nonzero(result.desired != previous))
    needed = np.ceil(demand / p.target_value)
    return {
        "recording": {"samples": int(result.rows or len(result.times)),
                      "first": float(result.times[0]) if len(result.times) else None,
                      "last": float(result.times[-1]) if len(result.times) else None,
                      "resolution_seconds": result.resolution,
                      "unknown_seconds": 0 if unknown is None else int(unknown.sum())},
        "policy": p.name,
        "startup_delay_seconds": result.startup_delay,
        "duration_seconds": n * tick,
        "ticks": n,
        "ticks_without_data": int(np.count_nonzero(np.isnan(result.stable))),
        "pod_seconds": float(result.desired.sum() * tick),
        "mean_replicas": float(result.desired.mean()) if n else 0.0,
        "peak_replicas": int(max(p.initial_replicas, int(result.desired.max(initial=0)))),
        # With the activator, what it held and served is not in here; what it lost is.
        "under_provisioned_demand_seconds": float(shortfall.sum()) + (held.lost if held else 0.0),
        "under_provisioned_share": float(short.mean()) if len(short) else 0.0,
        "wasted_pod_seconds": float(np.maximum(ready_known - needed, 0).sum()),
        "cold_start_episodes": cold_starts,
        "cold_start_seconds": int(np.count_nonzero(cold)),
        "scaling_actions": actions,
        "panic_seconds": float(np.count_nonzero(result.in_panic) * tick),
        "demand_seconds": float(arrived.sum()),
        **({"forecast": forecast_quality(result)} if result.forecast is not None else {}),
        **({"activator": held.as_dict(p.activator.max_pending_requests, p.activator.timeout)}
           if held is not None else {}),
    }


def forecast_quality(result: ReplayResult) -> dict:
    """MAE, MAPE and coverage of the forecast at its horizon (reference/predictive.md §4.3),
    plus the share of ticks on which it was allowed to act."""
    from scaler.decide import predict

    p = result.policy
    actual = predict.realised(p.prediction, result.times, result.values, result.ticks)
    q = predict.quality(result.forecast_point, actual, result.forecast)
    out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in q.items()}
    out["mode"] = p.prediction.mode
    out["model"] = p.prediction.model
    out["horizon_seconds"] = p.prediction.horizon
    # Ticks on which the forecast set a replica floor (act mode, active advice).
    out["floor_ticks"] = int(np.count_nonzero(result.floor)) if result.floor is not None else 0
    return out


def format_table(summary: dict, title: str) -> str:
    """A readable terminal table of the summary."""
    s = summary
    rec = s["recording"]
    unknown = rec.get("unknown_seconds", 0)
    rows = [
        ("duration", f"{format_duration(s['duration_seconds'])} ({s['ticks']:,} ticks, "
                     f"{s['ticks_without_data']:,} without data)"),
        ("resolution", f"{format_duration(rec.get('resolution_seconds', 1.0))}, "
                       + (f"{unknown:,} s unknown (no row holds them)" if unknown
                          else "no second unknown")),
        ("pod-seconds", f"{s['pod_seconds']:,.0f} (mean {s['mean_replicas']:.2f} replicas, "
                        f"peak {s['peak_replicas']})"),
        ("under-provisioned", f"{s['under_provisioned_demand_seconds']:,.1f} demand-seconds, "
                              f"{s['under_provisioned_share'] * 100:.2f}% of the time"),
        ("wasted pod-seconds", f"{s['wasted_pod_seconds']:,.0f}"),
        ("cold starts", f"{s['cold_start_episodes']} "
                        f"episode{'' if s['cold_start_episodes'] == 1 else 's'}, "
                        f"{s['cold_start_seconds']:,} s "
                        "with demand and no ready replica"),
        ("scaling actions", f"{s['scaling_actions']:,}"),
        ("time in panic", format_duration(s["panic_seconds"])),
    ]
    a = s.get("activator")
    if a:
        rows.append(("activator", f"{a['requests_delayed']:,.1f} requests held at zero and "
                     f"served (wait {a['wait_seconds_total']:,.1f} s in all, p99 "
                     f"{a['wait_seconds_p99']:.1f} s, max {a['wait_seconds_max']:.1f} s); "
                     f"{a['requests_timed_out']:,.1f} timed out, "
                     f"{a['requests_overflowed']:,.1f} overflowed"
                     + (f", {a['requests_held_at_end']:,.1f} still held at the end"
                        if a["requests_held_at_end"] else "")))
    f = s.get("forecast")
    if f:
        pct = (lambda v: "n/a" if v is None else f"{v * 100:.1f}%")
        rows.append(("forecast", f"{f['model']} ({f['mode']}), MAE "
                     f"{'n/a' if f['mae'] is None else format(f['mae'], '.2f')}, MAPE "
                     f"{pct(f['mape'])}, coverage {pct(f['coverage'])} at "
                     f"{format_duration(f['horizon_seconds'])}"))
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


COMPARED = (
    ("pod-seconds", "pod_seconds", "{:,.0f}"),
    ("under-provisioned demand-seconds", "under_provisioned_demand_seconds", "{:,.1f}"),
    ("time under-provisioned", "under_provisioned_share", "{:.2%}"),
    ("cold starts", "cold_start_episodes", "{:,}"),
    ("cold-start seconds", "cold_start_seconds", "{:,}"),
    ("wasted pod-seconds", "wasted_pod_seconds", "{:,.0f}"),
    ("scaling actions", "scaling_actions", "{:,}"),
    ("peak replicas", "peak_replicas", "{:,}"),
)


def format_compare(base_name: str, base: dict, name: str, other: dict, title: str) -> str:
    """Two replays of one recording side by side, with the relative change."""
    rows = [("", base_name, name, "change")]
    for label, key, fmt in COMPARED:
        a, b = base[key], other[key]
        change = "" if a == b else ("new" if not a else f"{(b - a) / a:+.1%}")
        rows.append((label, fmt.format(a), fmt.format(b), change))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [title, "-" * len(title)]
    for r in rows:
        lines.append(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  "
                     f"{r[2].rjust(widths[2])}  {r[3].rjust(widths[3])}")
    return "\n".join(lines)
