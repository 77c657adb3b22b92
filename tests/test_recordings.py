"""The bundled recordings: format, reproducibility, and that default.csv shows every KPA phase."""

from __future__ import annotations

import csv
import importlib.util
import math
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from scaler.replay.engine import replay
from scaler.policy import Policy

REPO = Path(__file__).resolve().parent.parent
RECORDINGS = REPO / "scaler" / "recordings"
CSV_FILES = sorted(p.name for p in RECORDINGS.glob("*.csv"))
# The multi-day recording: gzipped, a row per minute (its resolution); tested in
# test_multiday_recording.py.
GZ_FILES = sorted(p.name for p in RECORDINGS.glob("*.csv.gz"))
VALUE = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]{0,2}[1-9])?$")  # <= 3 decimals, no "-", no "1e-5"


def load_tool() -> ModuleType:
    """tools/make_recordings.py is a script, not a package module: load it by path."""
    path = REPO / "tools" / "make_recordings.py"
    spec = importlib.util.spec_from_file_location("make_recordings", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


make_recordings = load_tool()


def read(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse strictly, as the format says: header, then `int,value` per line, "\\n" endings."""
    text = (RECORDINGS / name).read_bytes().decode("ascii")
    assert text.endswith("\n") and "\r" not in text
    lines = text[:-1].split("\n")
    assert lines[0] == "timestamp,value"
    ts, vs = [], []
    for line in lines[1:]:
        t, v = line.split(",")
        assert re.fullmatch(r"[0-9]+", t), line
        assert VALUE.fullmatch(v), line
        ts.append(int(t))
        vs.append(float(v))
    return np.array(ts, dtype=np.int64), np.array(vs)


# --------------------------------------------------------------------------------------
# Format


def test_the_catalogue_and_the_directory_agree() -> None:
    built = {r.name for r in make_recordings.CATALOGUE}
    assert set(CSV_FILES) | set(GZ_FILES) == built
    assert "default.csv" in built
    assert {p.name for p in RECORDINGS.iterdir()} == built | {"README.md"}


@pytest.mark.parametrize("name", CSV_FILES)
def test_recording_parses(name: str) -> None:
    ts, v = read(name)
    assert ts.size >= 3000  # about an hour or more
    assert np.all(np.diff(ts) == 1)  # ascending, one row per second, no gaps
    assert 1_600_000_000 < ts[0] < 1_900_000_000  # plausible unix seconds, not ms
    assert np.all(np.isfinite(v)) and v.min() >= 0
    assert v.max() > 0


def test_recordings_are_small() -> None:
    sizes = {name: (RECORDINGS / name).stat().st_size for name in CSV_FILES}
    assert max(sizes.values()) < 600_000, sizes
    assert sum(sizes.values()) < 3_000_000, sizes


def test_readme_names_every_file_and_keeps_the_attribution() -> None:
    readme = (RECORDINGS / "README.md").read_text()
    for name in CSV_FILES:
        assert f"| {name} |" in readme
    assert "CC-BY 4.0" in readme
    assert "Splitwise: Efficient generative LLM inference using phase splitting" in readme
    assert "Serverless in the Wild" in readme
    assert "python tools/make_recordings.py" in readme


def test_raw_traces_keep_their_attribution() -> None:
    readme = (REPO / "tools" / "traces" / "README.md").read_text()
    for trace in (make_recordings.LLM_TRACE, make_recordings.FUNCTION_INVOCATIONS,
                  make_recordings.FUNCTION_DURATIONS):
        assert trace.exists()
        assert trace.name in readme
    assert "CC-BY 4.0" in readme and "Splitwise" in readme and "Serverless in the Wild" in readme


# --------------------------------------------------------------------------------------
# Reproducibility


def test_regenerating_gives_byte_identical_files(tmp_path: Path) -> None:
    # The whole catalogue builds in well under a second, so all of it is checked.
    assert make_recordings.main(["--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(CSV_FILES + GZ_FILES + ["README.md"])
    for name in written:
        assert (tmp_path / name).read_bytes() == (RECORDINGS / name).read_bytes(), name


def test_unknown_recording_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown recording"):
        make_recordings.main(["--out", str(tmp_path), "nope.csv"])


@pytest.mark.parametrize(("value", "text"), [
    (175.0, "175"), (0.125, "0.125"), (1.5, "1.5"), (0.0, "0"), (1e-5, "0"), (2.0004, "2"),
    (2.0006, "2.001"), (1715.25, "1715.25"),
])
def test_format_value(value: float, text: str) -> None:
    assert make_recordings.format_value(value) == text


@pytest.mark.parametrize(("m", "text"), [(0, "0"), (1017, "1.017"), (5000, "5"), (50, "0.05")])
def test_format_thousandths(m: int, text: str) -> None:
    assert make_recordings.format_thousandths(m) == text


# --------------------------------------------------------------------------------------
# Real traces


def test_llm_recording_keeps_every_request_seconds() -> None:
    """Little's law over the whole trace: Σ concurrency·1 s = Σ service times."""
    m = make_recordings
    total_ticks = 0
    with m.LLM_TRACE.open(newline="") as f:
        for row in csv.DictReader(f):
            total_ticks += (m.LLM_FIXED_TICKS
                            + m.LLM_TICKS_PER_CONTEXT_TOKEN * int(row["ContextTokens"])
                            + m.LLM_TICKS_PER_GENERATED_TOKEN * int(row["GeneratedTokens"]))
    ts, v = read("azure_llm_conv.csv")
    # Each second is rounded to 1/1000 of a request, so the sum may drift by 0.0005 per row.
    assert abs(v.sum() - total_ticks / m.TICKS_PER_SECOND) <= 0.0005 * v.size
    assert ts[0] == 1_700_158_546  # 2023-11-16 18:15:46, the first arrival's second


def test_busy_per_second_splits_a_request_across_seconds() -> None:
    tick = make_recordings.TICKS_PER_SECOND
    # One request from 0.5 s to 2.25 s, another from 1.0 s to 1.5 s.
    arrivals = np.array([tick // 2, tick])
    ends = np.array([tick * 9 // 4, tick * 3 // 2])
    busy = make_recordings.busy_per_second(arrivals, ends, 3)
    assert busy.tolist() == [tick // 2, tick + tick // 2, tick // 4]


def test_function_recording_is_littles_law_per_minute() -> None:
    m = make_recordings
    ts, v = read("azure_function_queue.csv")
    assert ts.size == m.FUNCTION_MINUTES * 60
    per_minute = v.reshape(-1, 60)
    assert np.all(per_minute == per_minute[:, :1])  # spread evenly over each minute
    with m.FUNCTION_INVOCATIONS.open(newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["HashFunction"] == m.FUNCTION_HASH)
    counts = np.array([int(row[str(k)]) for k in range(m.FUNCTION_FIRST_MINUTE,
                                                        m.FUNCTION_FIRST_MINUTE + m.FUNCTION_MINUTES)])
    assert per_minute[:, 0] == pytest.approx(counts * 1.649 / 60, abs=0.0005)
    assert (counts == 0).any() and (counts > 0).any()  # it has both idle and busy minutes


# --------------------------------------------------------------------------------------
# default.csv: every phase, by the formulas and through the project's own replay

TARGET = 70.0  # default policy: 100 × 70 %


def mmss(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


def test_default_recording_phases_by_the_formulas() -> None:
    ts, v = read("default.csv")
    assert ts.size == 3600
    stable = np.convolve(v, np.ones(60) / 60, mode="valid")  # stable[i] ends at second i + 59
    panic = np.convolve(v, np.ones(6) / 6, mode="valid")  # panic[i] ends at second i + 5

    def stable_count(t: int) -> int:
        return math.ceil(stable[t - 59] / TARGET)

    # (a) a baseline of a few replicas, steady: the 60 s count is 3 all through.
    assert {stable_count(t) for t in range(mmss("02:00"), mmss("15:00"))} == {3}
    # (b) the burst: within 4 s the 6 s average asks for at least twice the 3 ready replicas.
    onset = next(t for t in range(mmss("15:00"), mmss("15:05"))
                 if math.ceil(panic[t - 5] / TARGET) / 3 >= 2)
    assert onset <= mmss("15:04")
    assert {stable_count(t) for t in range(mmss("16:10"), mmss("20:00"))} == {25}
    # (c) back to the baseline.
    assert {stable_count(t) for t in range(mmss("21:10"), mmss("35:00"))} == {3}
    # (d) exact zeros long enough for the 60 s window to drain and the 30 s grace to pass.
    zeros = np.flatnonzero(v[mmss("35:00"):mmss("45:00")] == 0)
    assert zeros.size >= 600 - 2 and zeros.size >= 60 + 30 + 300
    # (e) demand comes back.
    assert v[mmss("45:00")] > 0 and v[mmss("45:10"):].min() > 0


@pytest.mark.parametrize("startup_delay", [0.0, 10.0, 30.0])
def test_default_recording_through_the_replay(startup_delay: float) -> None:
    ts, v = read("default.csv")
    result = replay(Policy(), ts.astype(np.float64), v, startup_delay=startup_delay)
    rel = result.ticks - ts[0]

    def during(a: str, b: str) -> np.ndarray:
        return (rel >= mmss(a)) & (rel < mmss(b))

    desired, ready, in_panic = result.desired, result.ready, result.in_panic
    # (a) steady baseline at 3 replicas, calm.
    assert set(desired[during("02:00", "15:00")].tolist()) == {3}
    assert not in_panic[during("02:00", "15:00")].any()
    # (b) the burst panics at once and reaches 25 replicas.
    assert in_panic[during("15:00", "15:04")].any()
    assert desired[during("15:00", "20:00")].max() == 25
    assert set(desired[during("19:00", "20:00")].tolist()) == {25}
    # (c) back to 3, without a panic on the way down.
    assert set(desired[during("22:00", "35:00")].tolist()) == {3}
    assert not in_panic[during("17:30", "45:00")].any()
    # (d) scaled to zero: nothing desired or ready once the window and grace have passed.
    assert set(desired[during("36:30", "45:00")].tolist()) == {0}
    assert set(ready[during("36:40", "45:00")].tolist()) == {0}
    # (e) the cold start: the 45:00 tick asks for a replica while none is ready, then 3.
    first = int(np.flatnonzero(rel == mmss("45:00"))[0])
    assert desired[first] >= 1 and ready[first] == 0
    assert set(desired[during("48:00", "60:00")].tolist()) == {3}
    assert set(ready[during("48:00", "60:00")].tolist()) == {3}
