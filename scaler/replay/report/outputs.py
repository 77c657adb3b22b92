"""Writing a replay's outputs: decisions.csv, summary.json and chart.png.

Everything is written into a fresh temporary directory next to the output directory and
moved into place only when all of it succeeded, so a failed replay never leaves a
half-written result behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scaler.replay.engine import ReplayResult
from scaler.replay.report import csvfast
from scaler.replay.report.summary import per_second

DECISIONS = "decisions.csv"
SUMMARY = "summary.json"
CHART = "chart.png"
COMPARE_CHART = "compare.png"
COLUMNS = ["timestamp", "stable", "panic", "desired_replicas", "ready_replicas", "in_panic",
           "excess_burst_capacity", "demand"]


def shortfall_marks(result: ReplayResult) -> dict[str, np.ndarray]:
    """Per tick: whether a second of it had demand above the ready capacity
    (``unserved``), or demand and no ready replica (``cold_start``): the seconds the
    summary counts as under-provisioned and as cold starts."""
    _, demand, ready = per_second(result)
    step = int(result.policy.tick_interval)
    n = len(result.ticks)
    with np.errstate(invalid="ignore"):     # an unknown second (NaN) marks nothing
        short = demand[: n * step] > ready[: n * step] * result.policy.target
        cold = (demand[: n * step] > 0) & (ready[: n * step] == 0)
    return {"unserved": short.reshape(n, step).any(axis=1),
            "cold_start": cold.reshape(n, step).any(axis=1)}


def tick_demand(result: ReplayResult) -> np.ndarray:
    """Average recorded load over the known seconds of each tick interval [T, T + tick);
    NaN (an empty cell in decisions.csv) where all of them are unknown."""
    _, demand, _ = per_second(result)
    step = int(result.policy.tick_interval)
    n = len(result.ticks)
    if not n:
        return demand
    per_tick = demand[: n * step].reshape(n, step)
    if not np.isnan(per_tick).any():
        return per_tick.mean(axis=1)
    known = ~np.isnan(per_tick)
    count = known.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(known, per_tick, 0.0).sum(axis=1) / count, np.nan)


def write_decisions(result: ReplayResult, path: Path, demand: np.ndarray) -> None:
    """decisions.csv, formatted one block of ticks at a time (a 28-day replay has 1.2
    million rows: formatted at once, their cells alone would take ~100 MB)."""
    extra_names = ["forecast", "forecast_floor"] if result.forecast is not None else []

    def columns(a: int, b: int) -> list:
        ebc = result.ebc[a:b]
        missing = np.isnan(ebc)
        extra = []
        if result.forecast is not None:
            # The forecast at the horizon (empty while there is none) and the floor it set.
            extra = [csvfast.fixed6_columns(result.forecast[a:b]),
                     csvfast.int_columns(result.floor[a:b])]
        return [
            csvfast.int_columns(result.ticks[a:b]),
            csvfast.fixed6_columns(result.stable[a:b]),
            csvfast.fixed6_columns(result.panic[a:b]),
            csvfast.int_columns(result.desired[a:b]),
            csvfast.int_columns(result.ready[a:b]),
            csvfast.int_columns(result.in_panic[a:b].astype(np.int64)),
            csvfast.int_columns(np.where(missing, 0, ebc).astype(np.int64), missing),
            csvfast.fixed6_columns(demand[a:b]),
            *extra,
        ]

    csvfast.write_csv_blocks(path, COLUMNS + extra_names, len(result.ticks), columns)


def _draw_charts(result: ReplayResult, demand: np.ndarray, staging: Path, title: str,
                 subtitle: str, baseline: tuple[str, ReplayResult] | None) -> list[str]:
    from scaler.replay.report.chart import draw_compare_chart, draw_replay_chart

    times = result.ticks.astype(np.float64)
    draw_replay_chart(staging / CHART, times=times, demand=demand, ready=result.ready,
                      desired=result.desired, in_panic=result.in_panic,
                      target=result.policy.target, title=title, subtitle=subtitle,
                      forecast=result.forecast,
                      scheduled=(None if result.schedule_floor is None
                                 else result.schedule_floor > 0),
                      **shortfall_marks(result))
    if baseline is None:
        return [CHART]
    name, base = baseline
    draw_compare_chart(staging / COMPARE_CHART, times=times, demand=demand,
                       target=result.policy.target, title=title, subtitle=subtitle,
                       runs=[(name, base.ready, base.desired),
                             (result.policy.name, result.ready, result.desired)])
    return [CHART, COMPARE_CHART]


def write_all(result: ReplayResult, summary: dict, out_dir: Path, *, title: str,
              subtitle: str, chart: bool = True,
              baseline: tuple[str, ReplayResult] | None = None) -> list[Path]:
    """Write decisions.csv, summary.json and chart.png (and compare.png, charting
    ``baseline`` against ``result``) into ``out_dir``, all or nothing."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    try:
        demand = tick_demand(result)
        names = [DECISIONS, SUMMARY]
        # decisions.csv is written on a second thread while the charts are drawn (numpy
        # and zlib release the GIL); leaving the block waits for it and re-raises its error.
        with ThreadPoolExecutor(max_workers=1) as pool:
            decisions = pool.submit(write_decisions, result, staging / DECISIONS, demand)
            (staging / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
            if chart:
                names += _draw_charts(result, demand, staging, title, subtitle, baseline)
            decisions.result()
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in {CHART, COMPARE_CHART} - set(names):
            # A chart from an earlier run would no longer match these decisions.
            (out_dir / stale).unlink(missing_ok=True)
        for name in names:
            os.replace(staging / name, out_dir / name)
        return [out_dir / name for name in names]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
