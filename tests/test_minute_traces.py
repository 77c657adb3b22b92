"""tools/minute_traces.py: the shipped real traces are the published ones, and the one
per-minute conversion keeps every minute's request-seconds where the minute is."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re

import numpy as np
import pytest

import minute_traces
from minute_traces import per_second


@pytest.mark.parametrize("path", [minute_traces.NASA, minute_traces.AZURE_INVOCATIONS,
                                  minute_traces.AZURE_DURATIONS])
def test_shipped_traces_match_their_published_checksums(path):
    readme = (minute_traces.TRACES / "README.md").read_text()
    row = re.search(rf"\| {re.escape(path.name)} \| .*? \| ([0-9a-f]{{64}}) \|", readme)
    assert row, f"{path.name} is not listed with its checksum"
    assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == row[1]


def test_even_spread_is_littles_law_per_minute():
    v = per_second([0, 6, 120], 0.5)
    assert v.shape == (180,)
    assert v[:60].tolist() == [0.0] * 60
    assert v[60:120].tolist() == [0.05] * 60          # 6 requests × 0.5 s / 60 s
    assert v[120:].tolist() == [1.0] * 60


def test_slots_place_requests_in_the_middle_of_their_slots():
    # service 1 s: each request is in flight exactly one second from a uniform offset in
    # its arrival second, so it shows as half in its second and half in the next
    v = per_second([1, 2, 0], 1.0, "slots")
    on = np.flatnonzero(v)
    assert on.tolist() == [30, 31, 75, 76, 105, 106]  # minute 0 at 30; minute 1 at 60+15, 60+45
    assert v[on].tolist() == pytest.approx([0.5] * 6)


@pytest.mark.parametrize("spread", ["even", "slots"])
def test_every_minute_keeps_its_request_seconds(spread):
    counts = np.random.default_rng(1).integers(0, 200, 30)
    counts[-1] = 0   # nothing in flight past the end, where a recording stops
    v = per_second(counts, 0.25, spread)
    # slots: a request late in a minute spills into the next second, at most 0.25 s
    per_minute = v.reshape(-1, 60).sum(axis=1)
    assert per_minute.sum() == pytest.approx(counts.sum() * 0.25, rel=1e-12)
    assert np.allclose(per_minute, counts * 0.25, atol=0.25)


@pytest.mark.parametrize("bad, message", [
    ([[1, 2]], "1-D"), ([-1], ">= 0"), ([1.5], "whole numbers"),
])
def test_bad_counts(bad, message):
    with pytest.raises(ValueError, match=message):
        per_second(bad, 1.0)
    with pytest.raises(ValueError, match="spread"):
        per_second([1], 1.0, "poisson")


def test_the_nasa_trace():
    start, counts = minute_traces.nasa_minutes()
    assert counts.size == 28 * 1440 and counts.sum() == 1_494_505
    assert dt.datetime.fromtimestamp(start, dt.UTC) == dt.datetime(1995, 8, 4, 4, tzinfo=dt.UTC)
    times, values = minute_traces.nasa(scale=4)
    assert times.size == values.size == 28 * 86_400 and times[0] == start
    assert values.sum() == pytest.approx(4 * 1_494_505 * 0.5)


def test_the_azure_functions():
    fns = minute_traces.azure_functions()
    assert len(fns) == 97
    assert all(f["per_minute"].shape == (1440,) and f["service"] > 0 for f in fns)
    times, values = minute_traces.function_recording(fns[0], 1_000_000_000)
    assert times[0] == 1_000_000_000 and times.size == 86_400
    assert values.sum() == pytest.approx(fns[0]["per_minute"].sum() * fns[0]["service"])
