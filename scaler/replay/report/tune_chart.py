"""``tune.png``: every variant of a ``scaler tune`` run on cost against shortfall.

Two panels side by side, both with pod-seconds across: unserved demand-seconds up the
left, cold starts up the right. Every variant is a small grey dot; the Pareto front (no
other variant is as good on all three and better on one) is drawn in blue over them; the
current policy is a ring and the picked variant a diamond, each labelled. Same page,
fonts, palette and PNG writer as the replay charts (:mod:`scaler.replay.report.chart`);
Pillow is imported when drawing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from scaler.replay.report.chart import (
    AXIS,
    BACKGROUND,
    GRID,
    RUN_COLOURS,
    TEXT,
    TEXT_MUTED,
    _fit,
    _fmt_value,
    _font,
    _write_png,
)

WIDTH, HEIGHT = 1200, 700
PANELS = ((86, 90, 490, 460), (676, 90, 490, 460))   # (left, top, width, height)
OTHERS = (189, 193, 198)
FRONT = RUN_COLOURS[0]       # blue
CURRENT = (32, 33, 36)
PICKED = RUN_COLOURS[1]      # vermillion


def _nice_range(lo: float, hi: float, *, from_zero: bool, integer: bool,
                target: int = 5) -> tuple[float, float, float]:
    """(first, last, step) of a 1/2/2.5/5 × 10^k axis covering [lo, hi]."""
    if from_zero:
        lo = min(0.0, lo)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + (1.0 if lo == 0 else abs(lo) * 0.1)
    raw = (hi - lo) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * 0.999)
    if integer:
        step = max(1.0, float(round(step)))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    return first, max(last, first + step), step


class _Axes:
    def __init__(self, box: tuple[int, int, int, int], x: np.ndarray, y: np.ndarray,
                 *, y_integer: bool) -> None:
        self.left, self.top, self.width, self.height = box
        self.x0, self.x1, self.xs = _nice_range(float(x.min()), float(x.max()),
                                                from_zero=False, integer=False)
        self.y0, self.y1, self.ys = _nice_range(float(y.min()), float(y.max()),
                                                from_zero=True, integer=y_integer)

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.x0) / (self.x1 - self.x0)
        fy = (y - self.y0) / (self.y1 - self.y0)
        return (self.left + 8 + fx * (self.width - 16),
                self.top + self.height - 8 - fy * (self.height - 16))

    def ticks(self, first: float, last: float, step: float) -> list[float]:
        return [first + i * step for i in range(int(round((last - first) / step)) + 1)]


def draw_tune_chart(path: str | os.PathLike[str], *, pod_seconds: Sequence[float],
                    unserved: Sequence[float], cold_starts: Sequence[float],
                    front: Sequence[int], current: int, picked: int | None, title: str,
                    subtitle: str = "", picked_label: str = "picked") -> None:
    """Write the chart; the sequences hold one value per variant, ``front`` the indices
    on the Pareto front, ``current`` and ``picked`` one index each (picked may be None)."""
    from PIL import Image, ImageDraw

    x = np.asarray(pod_seconds, dtype=np.float64)
    ys = (np.asarray(unserved, dtype=np.float64), np.asarray(cold_starts, dtype=np.float64))
    if not (x.size == ys[0].size == ys[1].size) or x.size == 0:
        raise ValueError("one pod-seconds, unserved and cold-starts value per variant")
    on_front = np.zeros(x.size, dtype=bool)
    on_front[list(front)] = True
    img = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    d = ImageDraw.Draw(img)
    f_title, f_text, f_small = _font(20), _font(13), _font(12)
    d.text((PANELS[0][0] - 70, 14), _fit(d, title, f_title, WIDTH - 32), font=f_title,
           fill=TEXT)
    if subtitle:
        d.text((PANELS[0][0] - 70, 42), _fit(d, subtitle, f_text, WIDTH - 32), font=f_text,
               fill=TEXT_MUTED)
    headers = ("unserved demand-seconds (demand above ready capacity)",
               "cold starts (demand with no ready replica)")
    for box, y, header, integer in zip(PANELS, ys, headers, (False, True)):
        ax = _Axes(box, x, y, y_integer=integer)
        left, top, width, height = box
        d.text((left, top - 22), header, font=f_text, fill=TEXT)
        for v in ax.ticks(ax.y0, ax.y1, ax.ys):
            _, py = ax.px(ax.x0, v)
            d.line([(left, py), (left + width, py)], fill=GRID)
            d.text((left - 8, py), _fmt_value(v), font=f_small, fill=TEXT_MUTED, anchor="rm")
        for v in ax.ticks(ax.x0, ax.x1, ax.xs):
            px, _ = ax.px(v, ax.y0)
            d.line([(px, top), (px, top + height)], fill=GRID)
            d.text((px, top + height + 8), _fmt_value(v), font=f_small, fill=TEXT_MUTED,
                   anchor="ma")
        d.rectangle([left, top, left + width, top + height], outline=AXIS)
        d.text((left + width // 2, top + height + 28), "pod-seconds (cost)", font=f_text,
               fill=TEXT, anchor="ma")
        # others first, the front over them, then the two marked variants
        for i in np.flatnonzero(~on_front):
            _dot(d, ax.px(x[i], y[i]), 3, OTHERS)
        for i in np.flatnonzero(on_front):
            _dot(d, ax.px(x[i], y[i]), 5, FRONT)
        cx, cy = ax.px(x[current], y[current])
        d.ellipse([cx - 9, cy - 9, cx + 9, cy + 9], outline=CURRENT, width=2)
        _label(d, (cx, cy), "current", f_small, box, above=True)
        if picked is not None:
            px_, py_ = ax.px(x[picked], y[picked])
            d.polygon([(px_, py_ - 9), (px_ + 9, py_), (px_, py_ + 9), (px_ - 9, py_)],
                      fill=PICKED, outline=BACKGROUND)
            _label(d, (px_, py_), picked_label, f_small, box, above=False)
        if not np.any(y):
            note = "none in any variant"
            d.text((left + width // 2, top + 16), note, font=f_small, fill=TEXT_MUTED,
                   anchor="ma")
    # legend under the panels
    yl = HEIGHT - 40
    xl = PANELS[0][0]
    for label, draw in (
        (f"{x.size - int(on_front.sum())} other variants", lambda p: _dot(d, p, 3, OTHERS)),
        (f"Pareto front ({int(on_front.sum())})", lambda p: _dot(d, p, 5, FRONT)),
        ("current policy", lambda p: d.ellipse([p[0] - 7, p[1] - 7, p[0] + 7, p[1] + 7],
                                               outline=CURRENT, width=2)),
        ("picked", lambda p: d.polygon([(p[0], p[1] - 7), (p[0] + 7, p[1]), (p[0], p[1] + 7),
                                        (p[0] - 7, p[1])], fill=PICKED)),
    ):
        draw((xl + 8, yl + 7))
        d.text((xl + 22, yl), label, font=f_small, fill=TEXT)
        xl += 44 + int(d.textlength(label, font=f_small))
    _write_png(path, np.asarray(img))


def _dot(d, p: tuple[float, float], r: int, colour: tuple[int, int, int]) -> None:
    d.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)


def _label(d, p: tuple[float, float], text: str, font, box, *, above: bool) -> None:
    """Text beside a marker (above or below it, on the side with room), over a white
    patch; the current policy's label goes above, the pick's below, so both show when
    they coincide."""
    left, top, width, height = box
    w = d.textlength(text, font=font)
    x = p[0] + 13 if p[0] + 13 + w < left + width - 4 else p[0] - 13 - w
    y = p[1] - 24 if above else p[1] + 9
    y = min(max(top + 2, y), top + height - 16)
    d.rectangle([x - 2, y - 1, x + w + 2, y + 14], fill=BACKGROUND)
    d.text((x, y), text, font=font, fill=TEXT)
