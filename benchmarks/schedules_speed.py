"""Schedules' cost: the daemon's per-tick check (``scaler.decide.schedules.active``) and
replay's floor for a whole recording (``floor_series``), with two schedules — workdays
08:00-18:00 in Europe/Berlin and a 2-minute window every 5 minutes (8,064 windows in 28
days) — over 28 days of 2 s ticks (1,209,600).

The per-tick check runs in the daemon's tick (budget: a few milliseconds of a 2 s tick);
the floor series runs once per replay, beside the windows' fraction of a second.

    python benchmarks/schedules_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from scaler.decide.schedules import active, floor_series
from scaler.policy.model import Schedule

SCHEDULES = (Schedule("0 8 * * 1-5", 10 * 3600, 3, "Europe/Berlin"),
             Schedule("*/5 * * * *", 120, 2, "UTC"))
START = 1_772_409_600        # 2026-03-02T00:00:00Z, a Monday
TICKS = np.arange(START, START + 28 * 86_400, 2, dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    per_tick, series = [], []
    for _ in range(runs):
        t = time.perf_counter()
        for k in range(2000):
            active(SCHEDULES, float(START + 7 * k))
        per_tick.append((time.perf_counter() - t) / 2000)
        t = time.perf_counter()
        floor = floor_series(SCHEDULES, TICKS)
        series.append(time.perf_counter() - t)
    assert set(np.unique(floor).tolist()) == {0, 2, 3}
    print(f"| per-tick check, 2 schedules (median of {runs}) | "
          f"{statistics.median(per_tick) * 1e6:.0f} µs | a few ms |")
    print(f"| floor for 28 days of 2 s ticks, 8,084 windows (median of {runs}; "
          f"{min(series):.2f}–{max(series):.2f} s) | {statistics.median(series):.2f} s | "
          "under a second |")


if __name__ == "__main__":
    main()
