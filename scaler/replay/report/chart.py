"""PNG charts of a replay: what the recorded load was and what the decider would have done.

Two charts, both about 1200x700:

* :func:`draw_replay_chart` -- one policy on one recording.  Top panel: demand (filled
  area) against ready capacity (``ready x target``, step line) and an optional forecast
  (dashed), in metric units.  Bottom panel: desired and ready replicas (step lines).
  Panic periods are shaded in both panels.
* :func:`draw_compare_chart` -- 2-3 policy variants on the same recording: one capacity
  line and one desired-replicas line per variant, one colour per variant.

Speed is part of the contract: a 14-day replay at 1 s (604,800 decision ticks) must chart in
well under 150 ms, because ``scaler replay`` as a whole has about a second.  So:

* Every series is reduced to the plot's pixel columns first, with a vectorised
  first/min/max/last envelope per column (``np.minimum.reduceat``), so a one-tick spike is
  never lost and a step line stays a step line.  With fewer ticks than columns, each
  column samples the tick under its centre (steps) or interpolates between tick
  mid-points (demand, forecast).
* The plot areas are rasterised with numpy: each series becomes, per column, the vertical
  run of rows its line passes through (a "span"), which is exact for an envelope and needs
  no per-point Python.  Pillow only draws text, legends and axes.
* Pillow is imported inside the functions; importing this module loads numpy, not Pillow.

The time axis shows UTC wall-clock times (``HH:MM`` with the date underneath where it
changes, or ``Mon 13`` / month for multi-day spans), because SREs line replays up against
incident timelines and dashboards.  Recordings whose timestamps are not real wall-clock
times (they start within ten years of the epoch, e.g. a synthetic trace starting at 0) get
elapsed-time labels (``0``, ``10m``, ``1h30m``, ``2d``) instead.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from scaler.policy.durations import format_duration

__all__ = ["draw_compare_chart", "draw_replay_chart"]

# --------------------------------------------------------------------------------------
# Geometry (pixels).  Public so tests and callers can find things in the image.
# --------------------------------------------------------------------------------------
WIDTH, HEIGHT = 1200, 700
PLOT_LEFT = 72  # first pixel column of both plot areas
PLOT_WIDTH = 1104  # pixel columns of both plot areas (last column = PLOT_LEFT + PLOT_WIDTH - 1)
TOP_PANEL = (90, 270)  # (first row, height in rows): demand vs capacity
BOTTOM_PANEL = (406, 190)  # (first row, height in rows): replicas

# --------------------------------------------------------------------------------------
# Palette (RGB).
# --------------------------------------------------------------------------------------
# The page: paper, words, grid and axes.
BACKGROUND = (255, 255, 255)
TEXT = (32, 33, 36)
TEXT_MUTED = (95, 99, 104)
GRID = (232, 234, 237)
AXIS = (154, 160, 166)
# The top panel's series: the recorded demand, what was ready for it, what was forecast.
DEMAND_FILL = (203, 216, 232)
DEMAND_LINE = (134, 160, 191)
CAPACITY = (32, 45, 61)
FORECAST = (142, 68, 173)
# The bottom panel's series: replicas asked for, replicas ready.
DESIRED = (232, 113, 10)
READY = (24, 128, 56)
# Shading behind both panels.
PANIC = (252, 224, 220)
PANIC_GRID = (244, 210, 205)  # grid lines inside panic shading
NO_DATA = (240, 241, 243)  # top-panel columns where the recording has no demand samples
SCHEDULE = (224, 236, 248)  # behind both panels: a schedule window (spec.schedules) is open
# Marks along the top panel's baseline: demand above the ready capacity, and demand with no
# ready replica at all (a cold start), so a slower start-up shows at a glance.
UNSERVED = (214, 39, 40)
COLD_START = (103, 0, 13)
MARK_ROWS = 6
# Variants in draw_compare_chart (Okabe-Ito blue, vermillion, bluish green, reddish purple).
RUN_COLOURS = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167))

_FONT_TITLE, _FONT_TEXT, _FONT_SMALL = 20, 13, 12
_DEFAULT_TICK_S = 2.0  # the KPA default tick interval, used when one tick gives no spacing
_WALL_CLOCK_AFTER = 10 * 365 * 86400.0  # earlier "unix" times are treated as elapsed time


# --------------------------------------------------------------------------------------
# Reducing per-tick series to pixel columns.
# --------------------------------------------------------------------------------------
class _Envelope(NamedTuple):
    """Per pixel column: the first, lowest, highest and last value (NaN where no data)."""

    first: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    last: np.ndarray


class _Columns:
    """Maps ``n`` evenly spaced ticks onto ``width`` pixel columns.

    Tick ``i`` covers ``[i, i + 1)`` in tick units, i.e. pixels ``[i*w/n, (i+1)*w/n)``.
    With ``n >= width`` every column holds at least one tick start and is reduced with
    ``reduceat``; otherwise every column samples the tick under its centre.
    """

    def __init__(self, n: int, width: int) -> None:
        self.n, self.width = n, width
        self.reduce = n >= width
        cols = np.arange(width, dtype=np.int64)
        if self.reduce:
            self.starts = (cols * n + width - 1) // width  # first tick whose start is in col
            self.lasts = np.append(self.starts[1:], n) - 1
        else:
            self.under = ((cols + 0.5) * n / width).astype(np.int64).clip(0, max(n - 1, 0))

    def step(self, v: np.ndarray) -> _Envelope:
        """Envelope of a step series (values hold for their whole tick)."""
        if self.n == 0:
            nan = np.full(self.width, np.nan)
            return _Envelope(nan, nan, nan, nan)
        if not self.reduce:
            s = v[self.under].astype(np.float64)
            return _Envelope(s, s, s, s)
        return self._reduce(v)

    def line(self, v: np.ndarray) -> _Envelope:
        """Envelope of a sampled series drawn as a line through tick mid-points."""
        if self.n == 0 or self.reduce:
            return self.step(v)
        xp = (np.arange(self.n) + 0.5) * (self.width / self.n)
        s = np.interp(np.arange(self.width) + 0.5, xp, v)  # NaN spreads to its neighbours: a gap
        return _Envelope(s, s, s, s)

    def any(self, b: np.ndarray) -> np.ndarray:
        if self.n == 0:
            return np.zeros(self.width, dtype=bool)
        if not self.reduce:
            return b[self.under]
        return np.logical_or.reduceat(b, self.starts)

    def _reduce(self, v: np.ndarray) -> _Envelope:
        if v.dtype.kind == "f":
            lo = np.fmin.reduceat(v, self.starts)  # fmin/fmax skip NaN unless all are NaN
            hi = np.fmax.reduceat(v, self.starts)
            first, last = v[self.starts], v[self.lasts]
            first = np.where(np.isnan(first), lo, first)
            last = np.where(np.isnan(last), hi, last)
        else:
            lo = np.minimum.reduceat(v, self.starts).astype(np.float64)
            hi = np.maximum.reduceat(v, self.starts).astype(np.float64)
            first = v[self.starts].astype(np.float64)
            last = v[self.lasts].astype(np.float64)
        return _Envelope(first, lo, hi, last)


# --------------------------------------------------------------------------------------
# Rasterising envelopes into a panel (an (rows, cols, 3) uint8 array).
# --------------------------------------------------------------------------------------
def _solid(rows: int, cols: int, colour: tuple[int, int, int]) -> np.ndarray:
    if colour[0] == colour[1] == colour[2]:  # white: a memset
        return np.full((rows, cols, 3), colour[0], dtype=np.uint8)
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (rows, cols, 3)).copy()


class _Panel:
    PAD_TOP, PAD_BOTTOM = 6, 3  # headroom so thick lines at 0 or at the top stay whole

    def __init__(self, rows: int, cols: int, vmax: float) -> None:
        self.rows, self.cols, self.vmax = rows, cols, vmax
        self.px = _solid(rows, cols, BACKGROUND)
        self._r = np.arange(rows, dtype=np.float64)[:, None]
        self.zero_row = rows - 1 - self.PAD_BOTTOM

    def y(self, v: np.ndarray | float) -> np.ndarray:
        """Row (float, 0 = top) of value ``v``; values outside [0, vmax] are clamped."""
        v = np.clip(v, 0.0, self.vmax)
        return self.PAD_TOP + (self.zero_row - self.PAD_TOP) * (1.0 - v / self.vmax)

    def shade_columns(self, on: np.ndarray, colour: tuple[int, int, int]) -> None:
        self.px[:, on] = colour

    def hline(self, row: int, colour: tuple[int, int, int]) -> None:
        if 0 <= row < self.rows:
            self.px[row, :] = colour

    def grid_lines(self, rows: Sequence[int], cols: Sequence[int], shaded: np.ndarray) -> None:
        """Light grid lines; inside panic shading they are a darker tint of the shading."""
        line = np.where(shaded[:, None], np.array(PANIC_GRID, np.uint8), np.array(GRID, np.uint8))
        for r in rows:
            if 0 <= r < self.rows:
                self.px[r] = line
        for c in cols:
            if 0 <= c < self.cols:
                self.px[:, c] = line[c]

    def fill_below(self, env: _Envelope, colour: tuple[int, int, int]) -> None:
        top = self.y(env.hi)
        ok = ~np.isnan(top)
        top = np.where(ok, np.floor(top + 0.5), np.inf)
        self.px[(self._r >= top[None, :]) & (self._r < self.zero_row)] = colour

    def span(
        self,
        env: _Envelope,
        colour: tuple[int, int, int],
        *,
        width: int = 1,
        step: bool,
        dash: tuple[int, int] | None = None,
    ) -> None:
        """Draw a series: per column, every row its line passes through.

        ``step``: the value changes at the column where a tick starts (vertical riser there,
        flat otherwise).  Otherwise neighbouring columns are joined half-way, like a line.
        """
        y_hi, y_lo = self.y(env.hi), self.y(env.lo)
        y_first, y_last = self.y(env.first), self.y(env.last)
        ok = ~np.isnan(y_hi)
        prev_last = np.concatenate(([np.nan], y_last[:-1]))
        if step:
            top, bot = np.fmin(y_hi, prev_last), np.fmax(y_lo, prev_last)
        else:
            next_first = np.concatenate((y_first[1:], [np.nan]))
            a, b = (prev_last + y_first) / 2, (y_last + next_first) / 2
            top = np.fmin(np.fmin(y_hi, a), b)
            bot = np.fmax(np.fmax(y_lo, a), b)
        top = np.where(ok, np.floor(top + 0.5) - (width - 1) // 2, np.inf)
        bot = np.where(ok, np.floor(bot + 0.5) + width // 2, -np.inf)
        mask = (self._r >= top[None, :]) & (self._r <= bot[None, :])
        if width > 1:  # thicken risers sideways as well
            grown = mask.copy()
            for off in range(-((width - 1) // 2), width // 2 + 1):  # same split as rows
                if off > 0:
                    grown[:, off:] |= mask[:, :-off]
                elif off < 0:
                    grown[:, :off] |= mask[:, -off:]
            mask = grown
        if dash is not None:
            on, off = dash
            mask &= (np.arange(self.cols) % (on + off) < on)[None, :]
        self.px[mask] = colour


# --------------------------------------------------------------------------------------
# Axis helpers.
# --------------------------------------------------------------------------------------
def _nice_ticks(vmax: float, *, integer: bool = False, target: int = 5) -> tuple[float, float]:
    """(step, top) with ``top >= vmax`` a multiple of a 1/2/2.5/5 x 10^k step."""
    if not np.isfinite(vmax) or vmax <= 0:
        vmax = 1.0
    raw = vmax / target
    mag = 10.0 ** np.floor(np.log10(raw))
    mults = (1.0, 2.0, 5.0, 10.0) if integer else (1.0, 2.0, 2.5, 5.0, 10.0)
    step = next(m * mag for m in mults if m * mag >= raw * 0.999)
    if integer:
        step = max(1.0, float(round(step)))
    top = step * np.ceil(vmax / step - 1e-9)
    return float(step), float(max(top, step))


def _fmt_value(v: float) -> str:
    """Short tick label: 0, 0.25, 7.5, 40, 1.5k, 12k, 2M."""
    if v == 0:
        return "0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


_TIME_STEPS = (
    1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400,
)  # fmt: skip


def _fmt_elapsed(s: float) -> str:
    """Elapsed time on the axis: 0 at the origin, then 15m, 1h30m, 1d12h."""
    s = round(s)
    return "0" if s == 0 else format_duration(s, days=True)


def _fmt_span(s: float) -> str:
    if s >= 2 * 86400:
        return f"{s / 86400:.3g} d"
    if s >= 2 * 3600:
        return f"{s / 3600:.3g} h"
    if s >= 120:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def _time_ticks(
    t0: float, span: float, width: int
) -> tuple[list[float], list[tuple[str, str]], str]:
    """Tick times, two-line labels and the axis caption for ``[t0, t0 + span)``."""
    wall = t0 >= _WALL_CLOCK_AFTER
    max_labels = max(2, width // 78)
    step = next((s for s in _TIME_STEPS if span / s <= max_labels), None)
    if step is None:
        step = 28 * 86400 * int(np.ceil(span / (28 * 86400) / max_labels))
    if wall:
        # Align to UTC boundaries; weekly steps start on Mondays (the epoch was a Thursday).
        phase = 4 * 86400 if step % (7 * 86400) == 0 else 0
        first = np.ceil((t0 - phase) / step) * step + phase
    else:
        first = t0
    # the end of the span is the right edge of the plot: no tick there
    ticks = [float(t) for t in np.arange(first, t0 + span - 1e-9, step)]
    labels: list[tuple[str, str]] = []
    if wall:
        prev_ctx = None
        for i, t in enumerate(ticks):
            d = _dt.datetime.fromtimestamp(t, _dt.UTC)
            if step < 60:
                main, ctx = d.strftime("%H:%M:%S"), d.strftime("%b %d")
            elif step < 86400:
                main, ctx = d.strftime("%H:%M"), d.strftime("%b %d")
            else:
                main, ctx = f"{d:%a} {d.day}", d.strftime("%b %Y")
            labels.append((main, ctx if (i == 0 or ctx != prev_ctx) else ""))
            prev_ctx = ctx
        a = _dt.datetime.fromtimestamp(t0, _dt.UTC)
        b = _dt.datetime.fromtimestamp(t0 + span, _dt.UTC)
        fmt = "%Y-%m-%d %H:%M:%S" if step < 60 else "%Y-%m-%d %H:%M"
        caption = f"UTC   {a.strftime(fmt)}  to  {b.strftime(fmt)}"
    else:
        labels = [(_fmt_elapsed(t - t0), "") for t in ticks]
        caption = "elapsed time since the start of the recording"
    return ticks, labels, caption


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


# --------------------------------------------------------------------------------------
# Shared chart scaffolding.
# --------------------------------------------------------------------------------------
class _Series(NamedTuple):
    label: str
    colour: tuple[int, int, int]
    kind: str  # "fill", "line", "dash", "patch"
    width: int = 2


class _Labels(NamedTuple):
    """What a panel says: its y ticks (value, row), header, legend and an optional note."""

    y_ticks: list
    header: str
    legend: list[_Series]
    note: str | None


def _as(a: Any, dtype: Any, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype).reshape(-1)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values, expected {n} (one per tick)")
    return arr


def _tick_interval(times: np.ndarray) -> float:
    n = times.shape[0]
    if n >= 2:
        dt = (float(times[-1]) - float(times[0])) / (n - 1)
        if np.isfinite(dt) and dt > 0:
            return dt
    return _DEFAULT_TICK_S


class _Canvas:
    """The whole image: numpy pixels for the plots, then Pillow for text and decorations."""

    def __init__(self, times: np.ndarray) -> None:
        self.n = int(times.shape[0])
        self.dt = _tick_interval(times)
        self.t0 = float(times[0]) if self.n else 0.0
        self.span = self.n * self.dt
        self.cols = _Columns(self.n, PLOT_WIDTH)
        self.px = _solid(HEIGHT, WIDTH, BACKGROUND)
        self.texts: list[tuple[Any, ...]] = []
        if self.n:
            self.ticks, self.tick_labels, self.caption = _time_ticks(self.t0, self.span, PLOT_WIDTH)
        else:
            self.ticks, self.tick_labels, self.caption = [], [], "no decision ticks"
        self.tick_cols = (
            [round((t - self.t0) / self.span * PLOT_WIDTH) for t in self.ticks] if self.n else []
        )

    def panel(self, geom: tuple[int, int], vmax: float, integer: bool) -> tuple[_Panel, list]:
        step, top = _nice_ticks(vmax, integer=integer)
        p = _Panel(geom[1], PLOT_WIDTH, top)
        yt = [(v, round(float(p.y(v)))) for v in np.arange(0.0, top + step / 2, step)]
        return p, yt

    def grid(
        self, p: _Panel, yt: list, panic: np.ndarray | None, no_data: np.ndarray | None = None
    ) -> None:
        if no_data is not None and no_data.any():
            p.shade_columns(no_data, NO_DATA)
        if panic is not None and panic.any():
            p.shade_columns(panic, PANIC)
        else:
            panic = np.zeros(p.cols, dtype=bool)
        p.grid_lines([row for _, row in yt[1:]], self.tick_cols, panic)
        p.hline(p.zero_row, AXIS)  # the baseline: data at zero is drawn over it

    def place(self, p: _Panel, geom: tuple[int, int]) -> None:
        self.px[geom[0] : geom[0] + geom[1], PLOT_LEFT : PLOT_LEFT + PLOT_WIDTH] = p.px

    def finish(
        self,
        path: str | os.PathLike[str],
        *,
        title: str,
        subtitle: str,
        top: _Labels,
        bottom: _Labels,
    ) -> None:
        """Draw the words over the plotted pixels and write the PNG: the titles, each
        panel's header, legend, y labels and note, and the time axis."""
        from PIL import Image, ImageDraw

        img = Image.fromarray(self.px, "RGB")
        d = ImageDraw.Draw(img)
        f_title, f_text, f_small = _font(_FONT_TITLE), _font(_FONT_TEXT), _font(_FONT_SMALL)

        left, right = PLOT_LEFT - 56, PLOT_LEFT + PLOT_WIDTH
        d.text((left, 14), _fit(d, title, f_title, right - left), font=f_title, fill=TEXT)
        if subtitle:
            d.text(
                (left, 42), _fit(d, subtitle, f_text, right - left), font=f_text, fill=TEXT_MUTED
            )

        for (row0, rows), (yt, header, legend, note) in ((TOP_PANEL, top), (BOTTOM_PANEL, bottom)):
            panel_end = row0 + rows
            # legend (right) and header (left, shortened if they would meet) above the panel
            x = right
            for s in reversed(legend):
                x -= d.textlength(s.label, font=f_small)
                d.text((x, row0 - 21), s.label, font=f_small, fill=TEXT)
                x -= 24
                _swatch(d, x, row0 - 15, s)
                x -= 16
            d.text(
                (PLOT_LEFT, row0 - 22),
                _fit(d, header, f_text, x - PLOT_LEFT - 8),
                font=f_text,
                fill=TEXT,
            )
            # y axis: labels at the grid rows, baseline
            for v, r in yt:
                d.text(
                    (PLOT_LEFT - 8, row0 + r),
                    _fmt_value(v),
                    font=f_small,
                    fill=TEXT_MUTED,
                    anchor="rm",
                )
            for c in self.tick_cols:
                d.line([(PLOT_LEFT + c, panel_end), (PLOT_LEFT + c, panel_end + 3)], fill=AXIS)
            if note:
                at = (PLOT_LEFT + PLOT_WIDTH // 2, row0 + rows // 2)
                x0, y0, x1, y1 = d.textbbox(at, note, font=f_text, anchor="mm")
                d.rectangle([x0 - 10, y0 - 6, x1 + 10, y1 + 6], fill=BACKGROUND, outline=GRID)
                d.text(at, note, font=f_text, fill=TEXT_MUTED, anchor="mm")

        # time axis under the bottom panel
        base = BOTTOM_PANEL[0] + BOTTOM_PANEL[1]
        for c, (main, ctx) in zip(self.tick_cols, self.tick_labels):
            x = PLOT_LEFT + c
            d.text((x, base + 8), main, font=f_small, fill=TEXT_MUTED, anchor="ma")
            if ctx:
                d.text((x, base + 23), ctx, font=f_small, fill=TEXT_MUTED, anchor="ma")
        caption = self.caption
        if self.n:
            dt = self.dt
            every = _fmt_elapsed(dt) if dt >= 1 and dt == round(dt) else f"{dt:.3g}s"
            ticks = f"{self.n:,} tick{'s' if self.n != 1 else ''}"
            caption += f"   \u00b7   {_fmt_span(self.span)}, {ticks} of {every}"
        d.text((PLOT_LEFT, base + 46), caption, font=f_small, fill=TEXT_MUTED)
        if self.n > PLOT_WIDTH:
            d.text(
                (right, base + 46),
                "min/max per pixel column",
                font=f_small,
                fill=TEXT_MUTED,
                anchor="ra",
            )
        _write_png(path, np.asarray(img))


def _write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an 8-bit RGB PNG with the stdlib's zlib.

    Pillow's ``Image.save`` first imports its BMP/GIF/JPEG/PPM plugins (~15-20 ms in a fresh
    process, a real slice of the replay's budget); a PNG is just three chunks.  Every row uses
    the "Up" filter, which suits charts (long vertical runs) and is one numpy subtraction.
    """
    import struct
    import zlib

    h, w, _ = rgb.shape
    flat = rgb.reshape(h, w * 3)
    raw = np.empty((h, 1 + w * 3), dtype=np.uint8)
    raw[:, 0] = 2  # filter type Up
    if h:
        raw[0, 1:] = flat[0]
        np.subtract(flat[1:], flat[:-1], out=raw[1:, 1:])  # wraps mod 256, as PNG wants

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)),  # 8-bit RGB
            chunk(b"IDAT", zlib.compress(raw.tobytes(), 1)),
            chunk(b"IEND", b""),
        )
    )
    with open(path, "wb") as f:
        f.write(png)


def _fit(d: Any, text: str, font: Any, width: float) -> str:
    """``text``, cut with an ellipsis if it is wider than ``width`` pixels."""
    if d.textlength(text, font=font) <= width:
        return text
    while text and d.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "\u2026" if text else ""


def _swatch(d: Any, x: float, y: float, s: _Series) -> None:
    x = int(x)
    y = int(y)
    if s.kind == "fill":
        d.rectangle([x, y - 5, x + 17, y + 5], fill=DEMAND_FILL, outline=DEMAND_LINE)
    elif s.kind == "patch":
        edge = tuple(max(0, c - 24) for c in s.colour)
        d.rectangle([x, y - 5, x + 17, y + 5], fill=s.colour, outline=edge)
    elif s.kind == "dash":
        d.line([(x, y), (x + 6, y)], fill=s.colour, width=2)
        d.line([(x + 11, y), (x + 17, y)], fill=s.colour, width=2)
    else:
        d.rectangle([x, y - s.width // 2, x + 17, y + (s.width - 1) // 2], fill=s.colour)


def _widen(on: np.ndarray, by: int = 2) -> np.ndarray:
    """Marks ``by`` columns wider on each side: a 10 s event in an hour is one column."""
    out = on.copy()
    for off in range(1, by + 1):
        out[off:] |= on[:-off]
        out[:-off] |= on[off:]
    return out


def _nanmax(*arrays: np.ndarray) -> float:
    best = 0.0
    for a in arrays:
        if a.size and not np.isnan(a).all():
            best = max(best, float(np.nanmax(a)))
    return best


# --------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------
def draw_replay_chart(
    path: str | os.PathLike[str],
    *,
    times: np.ndarray,
    demand: np.ndarray,
    ready: np.ndarray,
    desired: np.ndarray,
    in_panic: np.ndarray,
    target: float,
    title: str,
    subtitle: str = "",
    forecast: np.ndarray | None = None,
    scheduled: np.ndarray | None = None,
    unserved: np.ndarray | None = None,
    cold_start: np.ndarray | None = None,
) -> None:
    """Write a PNG of one replay: demand vs ready capacity on top, replicas below.

    All per-tick arrays have one value per decision tick; ``demand`` and ``forecast`` may
    hold NaN where there is no data.  Ready capacity is ``ready * target``. ``scheduled``
    (bool) shades the ticks inside a schedule window. ``unserved`` and ``cold_start``
    (bool: a second of the tick had demand above the ready capacity, or demand and no
    ready replica, as the summary counts them) are marked along the top panel's baseline,
    red and dark red.
    """
    times = _as(times, np.float64, "times", None)
    n = times.shape[0]
    demand = _as(demand, np.float64, "demand", n)
    ready = _as(ready, np.int64, "ready", n)
    desired = _as(desired, np.int64, "desired", n)
    in_panic = _as(in_panic, bool, "in_panic", n)
    fc = None if forecast is None else _as(forecast, np.float64, "forecast", n)
    sched = None if scheduled is None else _as(scheduled, bool, "scheduled", n)
    target = float(target)

    cv = _Canvas(times)
    cols = cv.cols
    e_demand = cols.line(demand)
    e_fc = cols.line(fc) if fc is not None else None
    e_ready = cols.step(ready)
    e_desired = cols.step(desired)
    # capacity = ready x target: scaling by a constant commutes with the envelope
    # (for target >= 0), so reduce the integers once and scale the four column arrays.
    k = target if np.isfinite(target) and target >= 0 else np.nan
    e_cap = _Envelope(*(a * k for a in (e_ready.first, e_ready.lo, e_ready.hi, e_ready.last)))
    panic = cols.any(in_panic)
    windows = cols.any(sched) if sched is not None else None
    none = np.zeros(n, dtype=bool)
    short = none if unserved is None else _as(unserved, bool, "unserved", n)
    cold = none if cold_start is None else _as(cold_start, bool, "cold_start", n)
    m_short, m_cold = _widen(cols.any(short)), _widen(cols.any(cold))

    # top panel: demand vs capacity
    top_max = _nanmax(e_demand.hi, e_cap.hi, *(() if e_fc is None else (e_fc.hi,)))
    p, yt_top = cv.panel(TOP_PANEL, top_max, integer=False)
    no_data = np.isnan(e_demand.hi) if n else None
    if windows is not None and windows.any():
        p.shade_columns(windows, SCHEDULE)
    cv.grid(p, yt_top, panic, no_data)
    p.fill_below(e_demand, DEMAND_FILL)
    p.span(e_demand, DEMAND_LINE, step=False)
    if e_fc is not None:
        p.span(e_fc, FORECAST, width=2, step=False, dash=(8, 5))
    p.span(e_cap, CAPACITY, width=2, step=True)
    band = slice(p.zero_row - MARK_ROWS, p.zero_row)
    p.px[band, m_short & ~m_cold] = UNSERVED
    p.px[band, m_cold] = COLD_START
    cv.place(p, TOP_PANEL)

    # bottom panel: replicas (ready underneath, desired on top: where they agree you see
    # an orange line with a green edge, where ready lags you see them apart)
    q, yt_bot = cv.panel(BOTTOM_PANEL, _nanmax(e_ready.hi, e_desired.hi), integer=True)
    if windows is not None and windows.any():
        q.shade_columns(windows, SCHEDULE)
    cv.grid(q, yt_bot, panic)
    q.span(e_ready, READY, width=4, step=True)
    q.span(e_desired, DESIRED, width=2, step=True)
    cv.place(q, BOTTOM_PANEL)

    legend_top = [
        _Series("demand", DEMAND_FILL, "fill"),
        _Series("ready capacity", CAPACITY, "line"),
    ]
    if fc is not None:
        legend_top.append(_Series("forecast", FORECAST, "dash"))
    legend_top.append(_Series("panic", PANIC, "patch"))
    if windows is not None and windows.any():
        legend_top.append(_Series("schedule", SCHEDULE, "patch"))
    if m_short.any():
        legend_top.append(_Series("unserved", UNSERVED, "patch"))
    if m_cold.any():
        legend_top.append(_Series("cold start", COLD_START, "patch"))
    if no_data is not None and no_data.any():
        legend_top.append(_Series("no data", NO_DATA, "patch"))
    legend_bot = [_Series("desired", DESIRED, "line"), _Series("ready", READY, "line")]

    if n == 0:
        note_top = note_bot = "no decision ticks to draw"
    else:
        note_bot = None
        if np.isnan(demand).all():
            note_top = "no demand data in this recording"
        elif not np.any(demand[~np.isnan(demand)]) and not np.any(e_cap.hi > 0):
            note_top = "demand and capacity are zero throughout"
        else:
            note_top = None
    header = f"demand vs ready capacity (metric units; capacity = ready replicas x {target:g})"
    cv.finish(path, title=title, subtitle=subtitle,
              top=_Labels(yt_top, header, legend_top, note_top),
              bottom=_Labels(yt_bot, "replicas", legend_bot, note_bot))


def draw_compare_chart(
    path: str | os.PathLike[str],
    *,
    times: np.ndarray,
    demand: np.ndarray,
    runs: list[tuple[str, np.ndarray, np.ndarray]],
    target: float,
    title: str,
    subtitle: str = "",
) -> None:
    """Write a PNG comparing policy variants replayed on the same recording.

    ``runs`` holds ``(name, ready, desired)`` per variant (2-3 read best).  Top panel:
    demand and each variant's ready capacity; bottom panel: each variant's desired replicas.
    The first variant is drawn widest and underneath, so coinciding lines stay visible.
    """
    times = _as(times, np.float64, "times", None)
    n = times.shape[0]
    demand = _as(demand, np.float64, "demand", n)
    target = float(target)
    k = target if np.isfinite(target) and target >= 0 else np.nan
    parsed = [
        (str(name), _as(r, np.int64, f"{name} ready", n), _as(d, np.int64, f"{name} desired", n))
        for name, r, d in runs
    ]

    cv = _Canvas(times)
    cols = cv.cols
    e_demand = cols.line(demand)
    caps, wants = [], []
    for _, r, d in parsed:
        e_r = cols.step(r)
        caps.append(_Envelope(*(a * k for a in (e_r.first, e_r.lo, e_r.hi, e_r.last))))
        wants.append(cols.step(d))
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(parsed))]
    # Widest first: where variants coincide each still shows a stripe of its colour.
    widths = [max(1, 3 - i) for i in range(len(parsed))]

    p, yt_top = cv.panel(TOP_PANEL, _nanmax(e_demand.hi, *(e.hi for e in caps)), integer=False)
    no_data = np.isnan(e_demand.hi) if n else None
    cv.grid(p, yt_top, None, no_data)
    p.fill_below(e_demand, DEMAND_FILL)
    p.span(e_demand, DEMAND_LINE, step=False)
    for e, c, w in zip(caps, colours, widths):
        p.span(e, c, width=w, step=True)
    cv.place(p, TOP_PANEL)

    q, yt_bot = cv.panel(BOTTOM_PANEL, _nanmax(*(e.hi for e in wants)), integer=True)
    cv.grid(q, yt_bot, None)
    for e, c, w in zip(wants, colours, widths):
        q.span(e, c, width=w, step=True)
    cv.place(q, BOTTOM_PANEL)

    legend_top = [_Series("demand", DEMAND_FILL, "fill")]
    if no_data is not None and no_data.any():
        legend_top.append(_Series("no data", NO_DATA, "patch"))
    legend_bot = [
        _Series(name, c, "line", max(2, w)) for (name, _, _), c, w in zip(parsed, colours, widths)
    ]
    legend_top += legend_bot
    if n == 0:
        note_top = note_bot = "no decision ticks to draw"
    else:
        note_top = "no demand data in this recording" if np.isnan(demand).all() else None
        note_bot = None if parsed else "no runs to compare"
    header = (f"demand vs ready capacity per variant (metric units; capacity = ready "
              f"replicas x {target:g})")
    cv.finish(path, title=title, subtitle=subtitle,
              top=_Labels(yt_top, header, legend_top, note_top),
              bottom=_Labels(yt_bot, "desired replicas per variant", legend_bot, note_bot))
