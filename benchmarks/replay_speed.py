"""Replay speed and memory on a 14-day recording at 1 s resolution (1,209,600 samples).

Generates the recording (tools/synthetic.py's diurnal_weekly, seeded) once into
benchmarks/out/, then runs the real command — `scaler replay RECORDING --out DIR` in a
fresh process, parsing and every output (decisions.csv, summary.json, chart.png)
included — several times, and reports the median wall time, samples per second and the
peak resident memory of the replay process.

    python benchmarks/replay_speed.py [--runs 5] [--startup-delay 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from synthetic import diurnal_weekly  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TARGET_SAMPLES_PER_SECOND = 1_000_000
TARGET_PEAK_MIB = 500


def make_recording(path: Path) -> int:
    times, values = diurnal_weekly(days=14)
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            f.write("timestamp,value\n")
            np.savetxt(f, np.column_stack((times, values)), fmt=["%d", "%.3f"], delimiter=",")
    return len(times)


def run_once(recording: Path, startup_delay: float) -> tuple[float, float]:
    scaler = Path(sys.executable).parent / "scaler"
    out_dir = OUT / "replay"
    # Each run is its own process so RUSAGE_CHILDREN's max RSS is this run's peak;
    # a wrapper shell would report its own.
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([str(scaler), "replay", str(recording), "--out", str(out_dir),
                    "--startup-delay", str(startup_delay)],
                   check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    args = parser.parse_args()
    recording = OUT / "diurnal_weekly_14d.csv"
    samples = make_recording(recording)
    results = [run_once(recording, args.startup_delay) for _ in range(args.runs)]
    times = [r[0] for r in results]
    median = statistics.median(times)
    peak = max(r[1] for r in results)
    rate = samples / median
    print(f"recording: {recording.name}, {samples:,} samples, "
          f"{os.path.getsize(recording) / 2**20:.1f} MiB")
    print(f"runs: {', '.join(f'{t:.2f}s' for t in times)}")
    print(f"median wall time: {median:.2f} s  ->  {rate:,.0f} samples/s "
          f"(target >= {TARGET_SAMPLES_PER_SECOND:,})")
    print(f"peak RSS: {peak:.0f} MiB (target < {TARGET_PEAK_MIB} MiB)")
    return 0 if rate >= TARGET_SAMPLES_PER_SECOND and peak < TARGET_PEAK_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
