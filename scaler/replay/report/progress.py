"""A progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

from typing import TextIO

from scaler.clock import Clock, SystemClock

_WIDTH = 30


class Progress:
    def __init__(self, stream: TextIO, *, min_interval: float = 0.1,
                 clock: Clock | None = None) -> None:
        self.stream = stream
        self._clock = clock or SystemClock()
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.label = ""
        self._last = 0.0
        self._min_interval = min_interval

    def phase(self, label: str, fraction: float) -> None:
        self.label = label
        self.update(fraction, force=True)

    def update(self, fraction: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self._clock.monotonic()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        filled = int(_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "." * (_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {self.label:<20}")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (_WIDTH + 30) + "\r")
            self.stream.flush()
