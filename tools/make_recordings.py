#!/usr/bin/env python3
"""Regenerate scaler/recordings/ byte for byte: the synthetic shapes, the real traces, the README.

    python tools/make_recordings.py                 # rewrite scaler/recordings/
    python tools/make_recordings.py --out DIR       # write elsewhere (the tests compare)
    python tools/make_recordings.py default.csv     # only some files

Inputs are tools/synthetic.py (seeded) and the CC-BY traces copied into tools/traces/, so the
repository alone reproduces every bundled file. Output format, as ``scaler replay`` reads it:
``timestamp,value`` header, one row per second, integer unix seconds, the workload's total
load with at most 3 decimals, "\\n" line endings.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import datetime as dt
import gzip
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
if str(TOOLS) not in sys.path:  # loaded by path (as the tests do), not run as a script
    sys.path.insert(0, str(TOOLS))

import synthetic  # noqa: E402
from synthetic import DEFAULT_START, Series  # noqa: E402

TRACES = TOOLS / "traces"
RECORDINGS = REPO / "scaler" / "recordings"
LLM_TRACE = TRACES / "AzureLLMInferenceTrace_conv.csv"
FUNCTION_INVOCATIONS = TRACES / "sample10_invocations_per_minute_azure_schema.csv"
FUNCTION_DURATIONS = TRACES / "sample10_durations_azure_schema.csv"

TICKS_PER_SECOND = 10_000_000  # the LLM trace has 100 ns resolution; all its arithmetic is integer

# LLM service-time model, in 100 ns ticks: service = A + B·ContextTokens + C·GeneratedTokens.
# 0.2 s fixed (queueing in the server, tokenisation, network), prefill at 4,000 tokens/s, decode
# at 40 tokens/s per request (25 ms per generated token): a large model on one GPU server with
# continuous batching. Over this trace a request then lasts 5.8 s on average (median 3.7 s,
# longest 25.5 s), so about 32 requests are in flight on average, 56 at most.
LLM_FIXED_TICKS = 2_000_000  # 0.2 s
LLM_TICKS_PER_CONTEXT_TOKEN = 2_500  # 0.25 ms
LLM_TICKS_PER_GENERATED_TOKEN = 250_000  # 25 ms

# The Azure Functions 2019 function replayed: queue-triggered, 1,649 ms average duration, idle
# most of the night, then a steady consumer with idle minutes. Minutes 571..810 of its day
# (09:30–13:30 of the trace day, laid on DEFAULT_START's day: the sample does not say which day
# of the 14 it is).
FUNCTION_HASH = "8203ff88388384a6f9ed28664e8e9484119ff340cb7dc0811a15194b3a507f0e"
FUNCTION_FIRST_MINUTE = 571
FUNCTION_MINUTES = 240


# --------------------------------------------------------------------------------------
# Formatting


def format_value(v: float) -> str:
    """At most 3 decimals, no trailing zeros: 175.0 -> "175", 0.125 -> "0.125", 1e-5 -> "0"."""
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_thousandths(m: int) -> str:
    """An exact integer count of thousandths as a decimal: 1017 -> "1.017", 5000 -> "5"."""
    whole, frac = divmod(m, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".")


def to_csv(timestamps: np.ndarray, cells: list[str]) -> bytes:
    lines = ["timestamp,value"]
    lines += [f"{int(t)},{c}" for t, c in zip(timestamps.tolist(), cells, strict=True)]
    return ("\n".join(lines) + "\n").encode("ascii")


def series_csv(series: Series) -> bytes:
    ts, values = series
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("recording values must be finite and non-negative")
    return to_csv(ts, [format_value(v) for v in values.tolist()])


# --------------------------------------------------------------------------------------
# The default recording: every phase of the KPA under the default policy, in one hour


@dataclass(frozen=True)
class Phase:
    start: int  # seconds from the recording's start
    seconds: int
    level: float  # mean concurrency
    what: str


# Levels sit mid-way between replica counts, so Poisson noise in the 60 s average cannot flip
# ceil(S/70): 171.5 / 70 = 2.45 -> 3 replicas, 1715 / 70 = 24.5 -> 25 (1750 would be exactly 25.0
# and flap between 25 and 26).
BASELINE = 171.5
BURST = 10 * BASELINE

DEFAULT_PHASES = (
    Phase(0, 900, BASELINE, "steady baseline: ceil(171.5/70) = 3 replicas"),
    Phase(900, 300, BURST, "sudden 10x burst (2 s ramps): panic, then ceil(1715/70) = 25 replicas"),
    Phase(1200, 900, BASELINE, "back to baseline: stable window drains, 25 -> 3 replicas"),
    Phase(2100, 600, 0.0, "no demand: stable average reaches 0 after 60 s, 30 s grace, 0 replicas"),
    Phase(2700, 900, BASELINE, "demand returns: cold start from 0 replicas, back to 3"),
)
RAMP_SECONDS = 2  # the burst's edges, as in the S2 "sudden" variant


def default_recording() -> Series:
    """The hour that ``scaler replay`` uses when given no recording (phases: DEFAULT_PHASES)."""
    segments: list[tuple[int, float, float]] = []
    for i, p in enumerate(DEFAULT_PHASES):
        prev = DEFAULT_PHASES[i - 1].level if i else p.level
        # Burst edges ramp over RAMP_SECONDS; a drop to zero or a return from it is a step.
        ramp = RAMP_SECONDS if i and prev > 0 and p.level > 0 else 0
        if ramp:
            segments.append((ramp, prev, p.level))
        segments.append((p.seconds - ramp, p.level, p.level))
    profile = synthetic.piecewise_linear(segments)
    return synthetic.from_profile(profile, service_time=0.5, seed=1, start=DEFAULT_START)


# --------------------------------------------------------------------------------------
# Real traces


def _trace_ticks(stamp: str) -> int:
    """"2023-11-16 18:15:46.6805900" -> 100 ns ticks since the epoch (trace clock read as UTC)."""
    whole, _, frac = stamp.partition(".")
    seconds = calendar.timegm(dt.datetime.fromisoformat(whole).timetuple())
    return seconds * TICKS_PER_SECOND + int((frac + "0000000")[:7])


def busy_per_second(arrivals: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """In-flight time (ticks) in each second [k, k+1) of requests in flight on [arrival, end).

    Exact integer arithmetic: the cumulative in-flight time up to x is
    Σ_{a<x} (x − a) − Σ_{e<x} (x − e), evaluated at every second boundary with sorted prefix sums.
    Times are relative to the recording's start, so nothing overflows int64.
    """
    x = np.arange(n + 1, dtype=np.int64) * TICKS_PER_SECOND

    def cumulative(points: np.ndarray) -> np.ndarray:
        p = np.sort(points)
        prefix = np.concatenate([[0], np.cumsum(p)])
        k = np.searchsorted(p, x, side="left")  # points strictly before x
        return k * x - prefix[k]

    return np.diff(cumulative(arrivals) - cumulative(ends))


def llm_recording(path: Path = LLM_TRACE) -> tuple[np.ndarray, list[str]]:
    """Per-second average concurrency of the Azure LLM conversation trace (service model above)."""
    arrivals, services = [], []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            arrivals.append(_trace_ticks(row["TIMESTAMP"]))
            services.append(LLM_FIXED_TICKS
                            + LLM_TICKS_PER_CONTEXT_TOKEN * int(row["ContextTokens"])
                            + LLM_TICKS_PER_GENERATED_TOKEN * int(row["GeneratedTokens"]))
    a = np.array(arrivals, dtype=np.int64)
    start = int(a.min() // TICKS_PER_SECOND)
    a -= start * TICKS_PER_SECOND
    e = a + np.array(services, dtype=np.int64)
    n = int(-(-e.max() // TICKS_PER_SECOND))  # through the second in which the last request ends
    busy = busy_per_second(a, e, n)
    # Ticks -> thousandths of a request, rounded half up, in integers (exact on any machine).
    thousandths = (busy + 5_000) // 10_000
    ts = start + np.arange(n, dtype=np.int64)
    return ts, [format_thousandths(int(m)) for m in thousandths.tolist()]


def function_recording(
    invocations: Path = FUNCTION_INVOCATIONS,
    durations: Path = FUNCTION_DURATIONS,
    function: str = FUNCTION_HASH,
    first_minute: int = FUNCTION_FIRST_MINUTE,
    minutes: int = FUNCTION_MINUTES,
) -> tuple[np.ndarray, list[str]]:
    """One Azure Functions 2019 function, per second: Little's law, spread evenly over each minute.

    concurrency = invocations/60 s × average duration, the same value for the 60 seconds of its
    minute. The trace has only per-minute counts and one average duration per function.
    """
    with durations.open(newline="") as f:
        avg_ms = next(int(r["Average"]) for r in csv.DictReader(f) if r["HashFunction"] == function)
    with invocations.open(newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["HashFunction"] == function)
    counts = [int(row[str(m)]) for m in range(first_minute, first_minute + minutes)]
    # thousandths = count × avg_ms / 60, rounded half up in integers.
    cells = [format_thousandths((2 * c * avg_ms + 60) // 120) for c in counts for _ in range(60)]
    start = DEFAULT_START + (first_minute - 1) * 60
    return start + np.arange(len(cells), dtype=np.int64), cells


# --------------------------------------------------------------------------------------
# The multi-day recording: the NASA web server, a row per minute


NASA_SCALE = 100     # requests ×100: the predictive example's target 100 sees what target 1
                     # sees at ×1 in benchmarks/ (peak about 3 replicas)


def nasa_recording() -> bytes:
    """28 days of the NASA trace at its own resolution, a row per minute (replay holds
    each for its minute): requests × 100 × 0.5 s / 60 s in flight, gzipped."""
    import minute_traces

    start, counts = minute_traces.nasa_minutes()
    # thousandths = count × 100 × 500 ms / 60 s, rounded half up in integers.
    cells = [format_thousandths((2 * c * NASA_SCALE * 500 + 60) // 120)
             for c in counts.tolist()]
    text = to_csv(start + 60 * np.arange(counts.size, dtype=np.int64), cells)
    # mtime 0 and no file name: the same bytes on every run.
    return gzip.compress(text, compresslevel=9, mtime=0)


def unpacked(name: str, data: bytes) -> bytes:
    return gzip.decompress(data) if name.endswith(".gz") else data


# --------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Recording:
    name: str
    build: Callable[[], bytes]
    what: str


def _synthetic(make: Callable[[], Series]) -> Callable[[], bytes]:
    return lambda: series_csv(make())


def _real(make: Callable[[], tuple[np.ndarray, list[str]]]) -> Callable[[], bytes]:
    def build() -> bytes:
        ts, cells = make()
        return to_csv(ts, cells)
    return build


CATALOGUE: tuple[Recording, ...] = (
    Recording("default.csv", _synthetic(default_recording),
              "The default for `scaler replay`: baseline, 10x burst, back, zero, cold start "
              "(timeline below). `default_recording()` in tools/make_recordings.py, "
              "service 0.5 s, seed 1."),
    Recording("burst_10x.csv", _synthetic(lambda: synthetic.burst(seed=2)),
              "S2: 30 min at 171.5, a 2 s ramp to 1,715 held 5 min, a 2 s ramp back, 30 min at "
              "171.5 (3 -> 25 -> 3 replicas at target 70). "
              "`synthetic.burst(seed=2)`."),
    Recording("burst_10x_ramp30s.csv", _synthetic(lambda: synthetic.burst(ramp=30, seed=3)),
              "S2, 30 s ramp variant: as burst_10x.csv with 30 s ramps. "
              "`synthetic.burst(ramp=30, seed=3)`."),
    Recording("diurnal_morning.csv",
              _synthetic(lambda: synthetic.diurnal(8 / 24, start=DEFAULT_START + 4 * 3600,
                                                   seed=4)),
              "S1, the morning climb of a weekday: 04:00-12:00 UTC of `synthetic.diurnal` "
              "(mean 350, amplitude 0.6, peak 16:00, 10 % noise per minute): from the trough "
              "at 140 up to about 455. `synthetic.diurnal(8/24, start=DEFAULT_START + 4 h, "
              "seed=4)`; the 14-day S1 series is `synthetic.diurnal_weekly()`, too big to ship."),
    Recording("sparse_function.csv",
              _synthetic(lambda: synthetic.sparse_function(6, idle_median=1800.0, seed=5)),
              "S3: bursts of 1-20 requests (2 s each) arriving within 5 s; the gaps are 70 % "
              "every 10 min ± 10 %, 30 % lognormal (median 30 min, sigma 1); 6 h, starting idle. "
              "`synthetic.sparse_function(6, idle_median=1800, seed=5)`."),
    Recording("ramp.csv", _synthetic(lambda: synthetic.ramp(seed=6)),
              "S4: 0 to 700 over 60 min, 30 min at 700, back to 0 over 60 min. "
              "`synthetic.ramp(seed=6)`."),
    Recording("stationary_noise.csv", _synthetic(lambda: synthetic.stationary_noise(seed=7)),
              "S5: mean 350, Gamma rate factor with CV 0.75 redrawn every 5 s, Poisson "
              "arrivals; 1 h. `synthetic.stationary_noise(seed=7)`."),
    Recording("azure_llm_conv.csv", _real(llm_recording),
              "Real: every request of the Azure LLM inference trace 2023 (conversation), in "
              "flight for 0.2 s + 0.25 ms × ContextTokens + 25 ms × GeneratedTokens, averaged "
              "per second (mean request 5.8 s; 31.8 in flight on average, 56.1 at most). Original "
              "timestamps (2023-11-16, read as UTC)."),
    Recording("azure_function_queue.csv", _real(function_recording),
              "Real: Azure Functions 2019 function 8203ff88… (queue trigger, average 1,649 ms), "
              "minutes 571-810 of its day; per-minute invocations × 1.649 s / 60 s (Little's "
              "law), the same value for each second of the minute. Laid on 2026-03-02."),
    Recording("nasa_aug1995_x100.csv.gz", nasa_recording,
              "Real, multi-day, **a row per minute** (gzipped; replay reads it as it is): the "
              "NASA Kennedy Space Center web server, 4-31 August 1995 (28 days: a daily cycle, "
              "quieter weekends, news-day bursts); requests per minute × 100, each in flight "
              "0.5 s (Little's law per minute). Original timestamps (server time UTC-4). "
              "Enough history for the daily forecast: `scaler replay "
              "scaler/recordings/nasa_aug1995_x100.csv.gz --policy policies/predictive.yaml "
              "--compare`."),
)

README_HEAD = """\
# Bundled recordings

Load recordings for `scaler replay`. Each is a CSV with the header `timestamp,value`, one row
per second, integer unix timestamps in ascending order, and the workload's total load in
concurrency units (requests in flight, averaged over each second, as Knative's queue-proxy
reports it), non-negative, with at most 3 decimals. Idle seconds are rows with value 0, not
missing rows: a missing row is an unknown second, never zero load (replay leaves it out of
the averages, and holds replicas when most of a window is unknown). Every file but one has a
row in every second, so each replays exactly as Knative's own 1 s stream would; the
multi-day NASA recording has a row per minute, its resolution, and replay holds each row for
its minute (see the README's "Recording formats").

All files are generated; do not edit them. This README is generated too. Regenerate with

    python tools/make_recordings.py

which rewrites every file here byte for byte from `tools/synthetic.py` (seeded) and the
traces in `tools/traces/` (tests/test_recordings.py checks it). numpy's random streams are
stable within a numpy version, not across all versions: after a numpy upgrade, rerun the
command and review the diff.

Synthetic recordings start at 2026-03-02T00:00:00Z (a Monday) unless stated. Synthetic load is
built from a mean-concurrency profile: Little's law gives an arrival rate (profile / service
time), arrivals are Poisson per second, and each request is in flight for the service time
from a uniform offset in its arrival second (tools/synthetic.py explains the kernel).

"""

README_DEFAULT = """\
## default.csv, phase by phase

Default policy: target 100 × 70 % = 70 concurrent requests per replica, stable window 60 s,
panic window 6 s at 200 %, tick 2 s, scale-to-zero grace 30 s, initial replicas 1. Times are
from the start of the recording (2026-03-02T00:00:00Z); D is the replay's startup delay.

| from | to | mean concurrency | what the decider should do |
|---|---|---|---|
"""

README_DEFAULT_TAIL = """
Expected decisions, tick by tick, from the KPA rules (S, P = 60 s and 6 s averages; desired =
ceil(S/70) but at least floor(ready/2); panic while ceil(P/70) / max(1, ready) >= 2, and until
60 s after the last such tick, with a count that only rises). D = the replay's startup delay.

- 00:00 The recording starts in full flow with one initial replica: the first tick panics
  (ceil(168/70) / 1 = 3) and asks for 3. Panic ends about 60 s after the 3 replicas are ready
  (about 01:00 + D). Any recording that starts above 70 does this; it is the catch-up, not the
  burst.
- 15:00 Burst. At the 15:02 tick P is about 490: ceil(490/70) / 3 = 8/3 >= 2, panic. The panic
  count climbs 8, 15, 22, 25 as the 6 s window fills (25 by 15:08). Panic ends 60 s after the
  new replicas are ready (about 16:00 + D); the stable count, 25, holds to the end of the burst.
- 20:00 Burst over (2 s ramp down). P drops at once, so no panic; S drains over 60 s and the
  count steps down a replica or two per tick, 25 -> 3 by about 21:02.
- 35:00 Demand stops. 3 -> 2 (about 35:12) -> 1 (about 35:36) as S falls below 140 and 70;
  S = 0 from 36:00, when the last non-zero second has left the 60 s window, so the decider wants
  0; the last replica goes after the 30 s grace, at 36:30. 0 replicas from 36:30 to 45:00.
- 45:00 Demand returns: a cold start. The 45:00 tick asks for 1 replica; at 45:02 P is about 75
  with no replica ready (R = 1), so it panics and asks for 3 (by 45:06). Requests wait D for the
  first replica. Panic ends about 60 s after the 3 replicas are ready (about 46:04 + D).

"""

README_TAIL = """\
## Real traces: sources and attribution

Copies of the raw traces, with their checksums and licence, are in `tools/traces/`.

- `azure_llm_conv.csv` is derived from AzureLLMInferenceTrace_conv.csv of the Azure Public
  Dataset (https://github.com/Azure/AzurePublicDataset), licensed CC-BY 4.0. Attribution:
  P. Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting",
  ISCA 2024. Changes: arrivals turned into per-second average concurrency with the service-time
  model above (our assumption, not part of the dataset).
- `nasa_aug1995_x100.csv.gz` is derived from the NASA Kennedy Space Center WWW server logs of
  August 1995 (Internet Traffic Archive, NASA-HTTP: "The traces may be freely
  redistributed"), as per-second counts in
  https://github.com/reconfigurable-ml-pipeline/web-service-datasets (commit 7404ad66),
  summed into minutes. Changes: 1995-08-04 to 08-31 only (the server was down before), each
  minute's requests × 100 in flight 0.5 s (our scaling and service-time assumption).
- `azure_function_queue.csv` is derived from the Azure Functions Trace 2019 (Shahrad et al.,
  "Serverless in the Wild: Characterizing and Optimizing the Serverless Workload at a Large
  Cloud Provider", USENIX ATC 2020), data licensed CC-BY 4.0, as sampled by
  https://github.com/vhive-serverless/invitro (commit cb0077f3, `data/traces/10/`). Changes: one
  function, four hours, per-minute counts turned into per-second concurrency by Little's law,
  timestamps moved to 2026-03-02.
"""


def _utc(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _clock(seconds: int) -> str:
    """Minutes:seconds from the start of a recording."""
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _span(seconds: int) -> str:
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return " ".join(f"{v} {u}" for v, u in ((h, "h"), (m, "min"), (s, "s")) if v) or "0 s"


def render_readme(files: dict[str, bytes]) -> bytes:
    """The README, with each file's span, row count and size taken from the bytes written."""
    out = [README_HEAD, "| file | rows | span (UTC) | bytes | what and how |\n",
           "|---|---|---|---|---|\n"]
    for rec in CATALOGUE:
        rows = unpacked(rec.name, files[rec.name]).split(b"\n")[1:-1]
        first, last = int(rows[0].split(b",")[0]), int(rows[-1].split(b",")[0])
        step = int(rows[1].split(b",")[0]) - first if len(rows) > 1 else 1
        out.append(f"| {rec.name} | {len(rows):,} | {_utc(first)} .. {_utc(last)} "
                   f"({_span(last - first + step)}) | {len(files[rec.name]):,} | "
                   f"{rec.what} |\n")
    out.append("\n" + README_DEFAULT)
    for p in DEFAULT_PHASES:
        out.append(f"| {_clock(p.start)} | {_clock(p.start + p.seconds)} | {p.level:g} | "
                   f"{p.what} |\n")
    out.append(README_DEFAULT_TAIL)
    out.append(README_TAIL)
    return "".join(out).encode("utf-8")


def build_all(names: list[str] | None = None) -> dict[str, bytes]:
    """Every recording (or the named ones) as bytes; README.md when all are built."""
    wanted = [r for r in CATALOGUE if names is None or r.name in names]
    unknown = set(names or []) - {r.name for r in CATALOGUE} - {"README.md"}
    if unknown:
        raise SystemExit(f"unknown recording(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(r.name for r in CATALOGUE)}")
    files = {r.name: r.build() for r in wanted}
    if names is None or "README.md" in names:
        # The README describes every file, so it needs them all, wanted or not.
        everything = (files if len(files) == len(CATALOGUE)
                      else {r.name: r.build() for r in CATALOGUE})
        files["README.md"] = render_readme(everything)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RECORDINGS, help="output directory")
    parser.add_argument("names", nargs="*", help="only these files (default: all + README.md)")
    args = parser.parse_args(argv)
    files = build_all(args.names or None)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
