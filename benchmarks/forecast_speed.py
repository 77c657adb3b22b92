"""Forecast speed: one refit on 14 days of 1-minute history (seasonal-level: its daily
profile), and forecast_series on a 14-day recording at 1 s resolution (1,209,600 samples,
604,800 ticks every 2 s).

The recording is tools/synthetic.py's diurnal_weekly(days=14) (S1, seeded). A refit runs inside
the daemon's tick that completes a bucket, so its budget is 200 ms; forecast_series is what
replay runs with prediction on, so it should take a few seconds for 14 days.

    python benchmarks/forecast_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
import sys
import time
from pathlib import Path

import numpy as np

from scaler.decide.predict import forecast_series, quality, realised
from scaler.decide.predict.models import HoltWinters
from scaler.policy import PredictionPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from synthetic import DAY, diurnal_weekly  # noqa: E402

REFIT_BUDGET_MS = 200.0
TARGET_VALUE = 70.0   # the default policy's: seasonal-level costs its band in replicas of it
SERIES_BUDGET_S = 5.0


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def refit_times(history: np.ndarray, k0: int, seasons: tuple[int, ...],
                runs: int) -> tuple[float, float]:
    """(cold fit, warm refit) in ms: what Forecaster runs on its 14-day history."""
    def cold() -> None:
        HoltWinters(seasons).fit(history, k0)

    warm_model = HoltWinters(seasons)
    warm_model.fit(history[:-60], k0)           # fitted an hour ago

    def warm() -> None:
        model = HoltWinters(seasons)
        model.z, model.x = warm_model.z, warm_model.x
        model.fit(history, k0)

    return median_time(cold, runs) * 1e3, median_time(warm, runs) * 1e3


def profile_time(history: np.ndarray, k0: int, runs: int) -> float:
    """ms for seasonal-level's once-a-day work: the profile over 14 days of history."""
    from collections import deque

    from scaler.decide.predict.seasonal import Profile

    k_next = (k0 + history.size) // 1440 * 1440
    kept = deque(history[: k_next - k0].tolist(), maxlen=14 * 1440 + 7)

    def recompute() -> None:
        Profile(1440, 14, 7).recompute(k_next, kept, k0)

    return median_time(recompute, runs) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    times, values = diurnal_weekly(days=14)
    ticks = np.arange(times[0], times[-1] + 1, 2, dtype=np.int64)
    minutes = values.reshape(-1, 60).mean(axis=1)
    k0 = int(times[0]) // 60
    print(f"recording: {len(times):,} samples at 1 s, {len(ticks):,} ticks every 2 s; "
          f"history: {len(minutes):,} one-minute buckets")

    ok = True
    print("\nrefit (seasonal-level: profile) on 14 days of 1-minute history (median of runs):")
    for seasons in ((1440,), (1440, 10080)):
        cold, warm = refit_times(minutes, k0, seasons, args.runs)
        label = "[1d]" if len(seasons) == 1 else "[1d, 7d]"
        print(f"  holt-winters {label:9s} cold fit {cold:6.1f} ms   warm refit {warm:6.1f} ms")
        ok &= max(cold, warm) <= REFIT_BUDGET_MS

    profile = profile_time(minutes, k0, args.runs)
    print(f"  seasonal-level [1d]     daily profile {profile:6.1f} ms")
    ok &= profile <= REFIT_BUDGET_MS

    print("\nforecast_series, 1 s samples, ticks every 2 s (median of runs):")
    long_times, long_values = diurnal_weekly(days=21)
    long_ticks = np.arange(long_times[0], long_times[-1] + 1, 2, dtype=np.int64)
    recordings = {14: (times, values, ticks), 21: (long_times, long_values, long_ticks)}
    hw = PredictionPolicy(model="holt-winters", horizon=30.0)
    cases = [
        ("seasonal-level [1d]", PredictionPolicy(horizon=30.0), 14),
        # [1d, 7d] with minHistory 2 first fits at day 14: run it over 21 days
        ("holt-winters [1d]", hw, 14),
        ("linear", PredictionPolicy(model="linear", horizon=30.0), 14),
        ("ewma", PredictionPolicy(model="ewma", horizon=30.0), 14),
        ("holt-winters [1d, 7d]", replace(hw, seasonality=(DAY, 7 * DAY)), 21),
    ]
    for label, spec, days in cases:
        rec_times, rec_values, rec_ticks = recordings[days]
        series = None

        def run(spec: PredictionPolicy = spec, rec: tuple = recordings[days]) -> None:
            nonlocal series
            series = forecast_series(spec, *rec, TARGET_VALUE)

        seconds = median_time(run, args.runs)
        q = quality(series.point, realised(spec, rec_times, rec_values, rec_ticks),
                    series.upper)
        print(f"  {label:22s} {days} days {seconds:5.2f} s   active {series.active.mean():5.1%}"
              f"   MAE {q['mae']:5.1f}   MAPE {q['mape']:5.3f}   coverage {q['coverage']:5.1%}")
        if days == 14:
            ok &= seconds <= SERIES_BUDGET_S

    print(f"\nbudgets: refit <= {REFIT_BUDGET_MS:g} ms, forecast_series (14 days) <= "
          f"{SERIES_BUDGET_S:g} s: "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
