"""The replay chart: a valid PNG that shows what it claims to, pixel for pixel.

The tests read the image back and look for the palette colours at the places the module's
public geometry (PLOT_LEFT, PLOT_WIDTH, TOP_PANEL, BOTTOM_PANEL) says they must be.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scaler.replay.report import chart
from scaler.replay.report.chart import (
    BOTTOM_PANEL,
    PLOT_LEFT,
    PLOT_WIDTH,
    TOP_PANEL,
    draw_compare_chart,
    draw_replay_chart,
)

T0 = 1_715_558_400.0  # 2024-05-13 00:00:00 UTC, a Monday
DT = 2.0
W = PLOT_WIDTH


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (chart.WIDTH, chart.HEIGHT)
        return np.asarray(im.convert("RGB"))


def _panel(px: np.ndarray, geom: tuple[int, int]) -> np.ndarray:
    """The plot area of one panel, as (rows, PLOT_WIDTH, 3)."""
    return px[geom[0] : geom[0] + geom[1], PLOT_LEFT : PLOT_LEFT + W]


def _is(a: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(a == np.array(colour, dtype=np.uint8), axis=-1)


def _col(i: int, n: int) -> int:
    """Plot column (0-based) holding the start of tick ``i`` of ``n``."""
    return (i * W) // n


def _series(n: int, *, demand: float = 5.0, ready: int = 4, target: float = 10.0, **over):
    kw = {
        "times": T0 + DT * np.arange(n),
        "demand": np.full(n, demand),
        "ready": np.full(n, ready, dtype=np.int64),
        "desired": np.full(n, ready, dtype=np.int64),
        "in_panic": np.zeros(n, dtype=bool),
        "target": target,
        "title": "checkout-api",
        "subtitle": "policy checkout.yaml",
    }
    kw.update(over)
    return kw


def _shaded(panel: np.ndarray) -> np.ndarray:
    """Panic shading, including the grid lines tinted to match it."""
    return _is(panel, chart.PANIC) | _is(panel, chart.PANIC_GRID)


def _rows_of(panel: np.ndarray, col: int, colour) -> np.ndarray:
    return np.flatnonzero(_is(panel[:, col], colour))


# ----------------------------------------------------------------------------------------
# The file itself
# ----------------------------------------------------------------------------------------
def test_writes_a_valid_png_of_the_documented_size(tmp_path: Path) -> None:
    out = tmp_path / "replay.png"
    draw_replay_chart(out, **_series(3000))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        im.verify()  # checks every chunk's CRC
    with Image.open(out) as im:
        assert (im.size, im.mode) == ((1200, 700), "RGB")
        im.load()  # decompresses and unfilters the whole image


def test_importing_the_module_loads_neither_pillow_nor_matplotlib() -> None:
    code = (
        "import sys; import scaler.replay.report.chart\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('PIL', 'matplotlib')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------
# Panic shading
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [600, 5000], ids=["fewer-ticks-than-columns", "decimated"])
def test_panic_shades_exactly_its_columns_in_both_panels(tmp_path: Path, n: int) -> None:
    start, stop = n * 2 // 5, n * 2 // 5 + n // 20  # panic over ticks [start, stop)
    in_panic = np.zeros(n, dtype=bool)
    in_panic[start:stop] = True
    out = tmp_path / "panic.png"
    draw_replay_chart(out, **_series(n, in_panic=in_panic))
    px = _pixels(out)

    first, last = _col(start, n), -(-stop * W // n) - 1  # columns the panic ticks cover
    for geom in (TOP_PANEL, BOTTOM_PANEL):
        shaded = _shaded(_panel(px, geom))
        cols = np.flatnonzero(shaded.any(axis=0))
        assert cols.size, "no panic shading at all"
        assert abs(cols[0] - first) <= 1 and abs(cols[-1] - last) <= 1
        assert np.array_equal(cols, np.arange(cols[0], cols[-1] + 1)), "shading has holes"
        # the shading fills most of the column (lines and grid sit on top of it) ...
        middle = _col((start + stop) // 2, n)
        assert shaded[:, middle].mean() > 0.6
        # ... and no column outside the panic period carries it
        assert not shaded[:, : first - 1].any() and not shaded[:, last + 2 :].any()


def test_no_panic_means_no_shading(tmp_path: Path) -> None:
    out = tmp_path / "calm.png"
    draw_replay_chart(out, **_series(5000))
    px = _pixels(out)
    for geom in (TOP_PANEL, BOTTOM_PANEL):
        assert not _shaded(_panel(px, geom)).any()


# ----------------------------------------------------------------------------------------
# Decimation keeps every extreme
# ----------------------------------------------------------------------------------------
def test_a_one_tick_spike_in_600k_ticks_is_drawn_in_its_column(tmp_path: Path) -> None:
    n, k = 600_000, 123_457
    demand = np.ones(n)
    demand[k] = 1000.0  # one tick, 0.0002% of the series
    desired = np.ones(n, dtype=np.int64)
    desired[k + 50_000] = 40  # a one-tick blip in a step series
    out = tmp_path / "spike.png"
    draw_replay_chart(
        out, **_series(n, demand=0.0, ready=1, target=1.0, desired=desired) | {"demand": demand}
    )
    px = _pixels(out)

    top = _panel(px, TOP_PANEL)
    upper = top[: TOP_PANEL[1] // 2]  # values above about half the axis
    demand_px = _is(upper, chart.DEMAND_LINE) | _is(upper, chart.DEMAND_FILL)
    spike_cols = np.flatnonzero(demand_px.any(axis=0))
    assert spike_cols.size and set(spike_cols) <= {_col(k, n) - 1, _col(k, n), _col(k, n) + 1}
    assert demand_px[:, _col(k, n)].sum() > TOP_PANEL[1] // 3  # reaches up near the top

    low = _panel(px, BOTTOM_PANEL)[: BOTTOM_PANEL[1] // 2]
    blip_cols = np.flatnonzero(_is(low, chart.DESIRED).any(axis=0))
    c = _col(k + 50_000, n)
    assert blip_cols.size and set(blip_cols) <= {c - 1, c, c + 1, c + 2}


@pytest.mark.parametrize("n", [100, 100_000], ids=["11-px-per-tick", "90-ticks-per-px"])
def test_step_lines_stay_steps(tmp_path: Path, n: int) -> None:
    ready = np.where(np.arange(n) < n // 2, 2, 6).astype(np.int64)
    out = tmp_path / "step.png"
    draw_replay_chart(out, **_series(n, ready=0, desired=ready) | {"ready": ready})
    bottom = _panel(_pixels(out), BOTTOM_PANEL)
    c = _col(n // 2, n)
    before = _rows_of(bottom, c - 20, chart.READY)
    after = _rows_of(bottom, c + 20, chart.READY)
    riser = _rows_of(bottom, c, chart.READY)
    assert before.size and after.size
    assert before.max() - before.min() < 5 and after.max() - after.min() < 5  # flat treads
    assert after.mean() < before.mean() - 40  # 6 replicas draw higher than 2
    assert riser.min() <= after.min() + 1 and riser.max() >= before.max() - 1  # one riser
    # every column between is flat at one of the two levels: no ramps
    for col in range(c - 15, c + 15):
        if abs(col - c) <= 2:  # the riser, drawn 4 px wide
            continue
        rows = _rows_of(bottom, col, chart.READY)
        assert rows.max() - rows.min() < 5, col


# ----------------------------------------------------------------------------------------
# Scale
# ----------------------------------------------------------------------------------------
def _capacity_height(tmp_path: Path, name: str, ready: int, target: float) -> float:
    n = 2000
    demand = np.full(n, 10.0)
    demand[100] = 100.0  # pins the axis at 0..100 for every render
    out = tmp_path / f"{name}.png"
    draw_replay_chart(out, **_series(n, ready=ready, target=target) | {"demand": demand})
    top = _panel(_pixels(out), TOP_PANEL)
    col = W * 3 // 4
    baseline = _rows_of(top, col, chart.AXIS)
    line = _rows_of(top, col, chart.CAPACITY)
    assert baseline.size == 1 and line.size >= 1
    return float(baseline[0] - line.mean())


def test_capacity_line_height_is_proportional_to_ready_times_target(tmp_path: Path) -> None:
    h2 = _capacity_height(tmp_path, "r2", 2, 10.0)  # capacity 20
    h4 = _capacity_height(tmp_path, "r4", 4, 10.0)  # capacity 40
    h8 = _capacity_height(tmp_path, "r8", 8, 10.0)  # capacity 80
    assert h2 > 20
    assert h4 / h2 == pytest.approx(2.0, rel=0.04)
    assert h8 / h2 == pytest.approx(4.0, rel=0.04)
    # it is the product that counts, not ready alone
    assert _capacity_height(tmp_path, "r8t5", 8, 5.0) == pytest.approx(h4, abs=1.0)


def test_forecast_is_a_dashed_line(tmp_path: Path) -> None:
    n = 5000
    out = tmp_path / "fc.png"
    draw_replay_chart(out, **_series(n, demand=5.0, forecast=np.full(n, 20.0)))
    top = _panel(_pixels(out), TOP_PANEL)
    cols = _is(top, chart.FORECAST).any(axis=0)
    assert 0.45 < cols.mean() < 0.75  # on most of the width, but with gaps
    runs = np.diff(np.flatnonzero(np.diff(cols.astype(np.int8))))
    assert runs.size > 100 and runs.max() < 12  # many short dashes


# ----------------------------------------------------------------------------------------
# Degenerate inputs
# ----------------------------------------------------------------------------------------
def test_zero_ticks_render_an_empty_chart(tmp_path: Path) -> None:
    out = tmp_path / "empty.png"
    draw_replay_chart(out, **_series(0))
    top = _panel(_pixels(out), TOP_PANEL)
    for colour in (chart.DEMAND_FILL, chart.CAPACITY, chart.PANIC):
        assert not _is(top, colour).any()


def test_one_tick_fills_the_width(tmp_path: Path) -> None:
    out = tmp_path / "one.png"
    draw_replay_chart(out, **_series(1, in_panic=np.array([True])))
    px = _pixels(out)
    cap = _is(_panel(px, TOP_PANEL), chart.CAPACITY).any(axis=0)
    assert cap.mean() > 0.95
    assert _shaded(_panel(px, BOTTOM_PANEL)).any(axis=0).all()


def test_all_nan_demand_renders_the_rest_and_marks_no_data(tmp_path: Path) -> None:
    n = 800
    out = tmp_path / "nan.png"
    draw_replay_chart(out, **_series(n, demand=np.nan, forecast=np.full(n, np.nan)))
    px = _pixels(out)
    top = _panel(px, TOP_PANEL)
    assert not (_is(top, chart.DEMAND_FILL) | _is(top, chart.DEMAND_LINE)).any()
    assert _is(top, chart.NO_DATA).any(axis=0).mean() > 0.97  # all but the grid columns
    assert _is(top, chart.CAPACITY).any(axis=0).mean() > 0.95
    assert _is(_panel(px, BOTTOM_PANEL), chart.READY).any()


def test_all_zero_demand_and_replicas_render(tmp_path: Path) -> None:
    out = tmp_path / "zero.png"
    draw_replay_chart(out, **_series(500, demand=0.0, ready=0))
    _pixels(out)


def test_a_gap_in_the_recording_is_marked_not_drawn_as_zero(tmp_path: Path) -> None:
    n = 10_000
    demand = np.full(n, 50.0)
    demand[4000:5000] = np.nan
    out = tmp_path / "gap.png"
    draw_replay_chart(out, **_series(n) | {"demand": demand})
    top = _panel(_pixels(out), TOP_PANEL)
    gap = _is(top, chart.NO_DATA).any(axis=0)
    assert gap[_col(4500, n)] and not gap[_col(2000, n)] and not gap[_col(7000, n)]
    assert not _is(top[:, _col(4500, n)], chart.DEMAND_FILL).any()


def test_mismatched_lengths_are_rejected(tmp_path: Path) -> None:
    kw = _series(10)
    kw["ready"] = kw["ready"][:-1]
    with pytest.raises(ValueError, match="ready"):
        draw_replay_chart(tmp_path / "bad.png", **kw)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**32 - 1),
    nan_share=st.sampled_from([0.0, 0.1, 1.0]),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 1e7]),
    t0=st.sampled_from([0.0, T0]),
)
def test_any_reasonable_input_renders(tmp_path, n, seed, nan_share, scale, t0) -> None:
    rng = np.random.default_rng(seed)
    demand = rng.gamma(2.0, scale, n)
    demand[rng.random(n) < nan_share] = np.nan
    ready = rng.integers(0, 50, n)
    out = tmp_path / "any.png"
    draw_replay_chart(
        out,
        times=t0 + DT * np.arange(n),
        demand=demand,
        ready=ready,
        desired=ready + rng.integers(-1, 2, n).clip(0),
        in_panic=rng.random(n) < 0.05,
        target=scale or 1.0,
        title="any",
        forecast=demand * 1.1 if seed % 2 else None,
    )
    _pixels(out)


# ----------------------------------------------------------------------------------------
# Compare chart
# ----------------------------------------------------------------------------------------
def test_compare_chart_draws_each_run_in_its_own_colour(tmp_path: Path) -> None:
    n = 20_000
    times = T0 + DT * np.arange(n)
    demand = np.full(n, 30.0)
    a_ready = np.full(n, 4, dtype=np.int64)
    b_ready = np.full(n, 8, dtype=np.int64)
    out = tmp_path / "cmp.png"
    draw_compare_chart(
        out,
        times=times,
        demand=demand,
        runs=[("baseline", a_ready, a_ready), ("target 5", b_ready, b_ready)],
        target=10.0,
        title="compare",
        subtitle="two variants",
    )
    px = _pixels(out)
    ca, cb = chart.RUN_COLOURS[0], chart.RUN_COLOURS[1]
    assert ca != cb
    col = W // 2
    for geom in (TOP_PANEL, BOTTOM_PANEL):
        p = _panel(px, geom)
        ra, rb = _rows_of(p, col, ca), _rows_of(p, col, cb)
        assert ra.size and rb.size
        assert rb.mean() < ra.mean() - 20  # the bigger variant draws higher
        assert _is(p, ca).any(axis=0).mean() > 0.95 and _is(p, cb).any(axis=0).mean() > 0.95


def test_compare_chart_keeps_coinciding_runs_visible(tmp_path: Path) -> None:
    n = 3000
    same = np.full(n, 3, dtype=np.int64)
    out = tmp_path / "same.png"
    draw_compare_chart(
        out,
        times=T0 + DT * np.arange(n),
        demand=np.full(n, 10.0),
        runs=[("a", same, same), ("b", same, same), ("c", same, same)],
        target=10.0,
        title="three identical variants",
    )
    bottom = _panel(_pixels(out), BOTTOM_PANEL)
    for colour in chart.RUN_COLOURS[:3]:
        assert _is(bottom[:, W // 2], colour).any(), colour


def test_compare_chart_handles_empty_and_single_tick(tmp_path: Path) -> None:
    e = np.array([])
    ei = np.array([], dtype=np.int64)
    draw_compare_chart(
        tmp_path / "e.png",
        times=e,
        demand=e,
        runs=[("a", ei, ei), ("b", ei, ei)],
        target=1.0,
        title="empty",
    )
    _pixels(tmp_path / "e.png")
    one = np.array([2])
    draw_compare_chart(
        tmp_path / "o.png",
        times=np.array([T0]),
        demand=np.array([np.nan]),
        runs=[("a", one, one), ("b", one + 1, one + 1)],
        target=1.0,
        title="one",
    )
    _pixels(tmp_path / "o.png")


# ----------------------------------------------------------------------------------------
# Axis helpers
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("vmax", "integer", "step", "top"),
    [
        (33.0, True, 10.0, 40.0),
        (3.0, True, 1.0, 3.0),
        (0.0, True, 1.0, 1.0),
        (0.7, False, 0.2, 0.8),
        (1234.0, False, 250.0, 1250.0),
        (float("nan"), False, 0.2, 1.0),
    ],
)
def test_nice_ticks(vmax, integer, step, top) -> None:
    assert chart._nice_ticks(vmax, integer=integer) == pytest.approx((step, top))


def test_value_labels_are_short() -> None:
    assert [chart._fmt_value(v) for v in (0, 0.25, 7.5, 40, 1500, 12_000, 2e6)] == [
        "0",
        "0.25",
        "7.5",
        "40",
        "1.5k",
        "12k",
        "2M",
    ]


def test_time_axis_for_two_weeks_labels_days_in_utc() -> None:
    ticks, labels, caption = chart._time_ticks(T0, 14 * 86400, W)
    assert labels[0] == ("Mon 13", "May 2024")
    assert labels[1] == ("Tue 14", "")
    assert all((t - T0) % 86400 == 0 for t in ticks)
    assert caption.startswith("UTC")


def test_time_axis_for_ten_minutes_labels_clock_minutes() -> None:
    _ticks, labels, _ = chart._time_ticks(T0 + 30, 600, W)
    assert labels[0] == ("00:01", "May 13")
    assert [m for m, _ in labels[:3]] == ["00:01", "00:02", "00:03"]


def test_time_axis_for_synthetic_times_shows_elapsed_time() -> None:
    _, labels, caption = chart._time_ticks(0.0, 3 * 3600, W)
    assert [m for m, _ in labels[:3]] == ["0", "15m", "30m"]
    assert "elapsed" in caption


# ---- marks: unserved demand and cold starts; schedule windows shaded

def _marks(px: np.ndarray, colour) -> np.ndarray:
    top = _panel(px, TOP_PANEL)
    return _is(top, colour).any(axis=0)


def test_unserved_demand_and_cold_starts_are_marked_along_the_baseline(tmp_path):
    n = 400
    unserved, cold = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    unserved[100:120] = True
    cold[300:310] = True
    out = tmp_path / "c.png"
    draw_replay_chart(out, **_series(n), unserved=unserved, cold_start=cold)
    px = _pixels(out)
    short, cold = _marks(px, chart.UNSERVED), _marks(px, chart.COLD_START)
    assert short[_col(110, n)] and not short[_col(200, n)]
    assert cold[_col(305, n)] and not cold[_col(110, n)]


def test_schedule_windows_are_shaded_in_both_panels(tmp_path):
    n = 400
    scheduled = np.zeros(n, dtype=bool)
    scheduled[50:150] = True
    out = tmp_path / "s.png"
    draw_replay_chart(out, **_series(n), scheduled=scheduled)
    px = _pixels(out)
    for geom in (TOP_PANEL, BOTTOM_PANEL):
        shaded = _is(_panel(px, geom), chart.SCHEDULE).any(axis=0)
        assert shaded[_col(100, n)] and not shaded[_col(300, n)]


def test_a_slow_start_up_visibly_differs_on_the_default_recording(tmp_path):
    from scaler.cli import main

    seen = {}
    for delay in ("0", "10"):
        out = tmp_path / delay
        assert main(["replay", "--startup-delay", delay, "--out", str(out)]) == 0
        px = _pixels(out / "chart.png")
        seen[delay] = (_marks(px, chart.UNSERVED) | _marks(px, chart.COLD_START)).sum(), \
            _marks(px, chart.COLD_START).sum()
    # The 10 s start-up: more columns marked, and the return from zero is a cold start.
    assert seen["10"][0] > seen["0"][0]
    assert seen["10"][1] > 0 == seen["0"][1]
