"""`scaler tune` speed: 100 variants of a 14-day recording at 1 s resolution.

The recording is replay_speed.py's (tools/synthetic.py's diurnal_weekly, 14 days, 1,209,600
samples). The command is the real one, in a fresh process, outputs included:

    scaler tune RECORDING --vary stableWindow=30s..120s/10s \\
        --vary targetUtilizationPercentage=50..95/5 --out DIR

10 stable windows × 10 utilisations = 100 variants (the default policy is one of them),
10 window computations shared between them; and, with --prediction, the same 100 with the
forecast floor on (one shared forecast). Target: <= 60 s on the 2-core machine.

    python benchmarks/tune_speed.py [--runs 3] [--prediction]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replay_speed import OUT, make_recording

TARGET_SECONDS = 60.0
VARY = ["--vary", "stableWindow=30s..120s/10s", "--vary", "targetUtilizationPercentage=50..95/5"]
PREDICTIVE = """\
apiVersion: scaler/v1
kind: ScalingPolicy
metadata: {name: predictive}
spec:
  scaleTargetRef: {name: app}
  metric: {query: sum(app_inflight_requests)}
  prediction: {enabled: true, horizon: 60s}
"""


def run_once(recording: Path, policy: Path | None) -> tuple[float, float, str]:
    scaler = Path(sys.executable).parent / "scaler"
    args = [str(scaler), "tune", str(recording), *VARY, "--out", str(OUT / "tune")]
    if policy is not None:
        args += ["--policy", str(policy)]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    # the largest resident set of any process the runs started (the parent or a worker)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, peak, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prediction", action="store_true",
                        help="start from a policy with the forecast floor on")
    args = parser.parse_args()
    recording = OUT / "diurnal_weekly_14d.csv"
    samples = make_recording(recording)
    with tempfile.TemporaryDirectory() as tmp:
        policy = None
        if args.prediction:
            policy = Path(tmp) / "predictive.yaml"
            policy.write_text(PREDICTIVE)
        results = [run_once(recording, policy) for _ in range(args.runs)]
    times = [r[0] for r in results]
    median = statistics.median(times)
    print(f"recording: {recording.name}, {samples:,} samples; 100 variants"
          f"{' with prediction on' if args.prediction else ''}")
    print(f"runs: {', '.join(f'{t:.1f}s' for t in times)}")
    print(f"last run: {results[-1][2]}")
    print(f"median wall time: {median:.1f} s (target <= {TARGET_SECONDS:.0f} s); "
          f"largest process: {max(r[1] for r in results):.0f} MiB")
    return 0 if median <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
