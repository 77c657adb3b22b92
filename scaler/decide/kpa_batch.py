"""The decider's formulas for every tick of a recording at once (replay's fast path).

Each function is the array form of one step of :func:`scaler.decide.kpa.decide`, with
the same float operations in the same order, so it gives the same numbers bit for bit
(a property test holds the fast engine, which uses these, to the per-tick one).
``scaler.decide.kpa`` stays free of numpy so the daemon does not load it.
"""

from __future__ import annotations

import numpy as np

from scaler.decide.kpa import DeciderSpec


def raw_counts(spec: DeciderSpec, averages: np.ndarray) -> np.ndarray:
    """``decide``'s raw counts, ceil(average / target value), as float64 (NaN where the
    average is NaN: no data). 211 at target 70 → 4.0."""
    with np.errstate(invalid="ignore"):
        return np.ceil(averages / spec.target_value)


def excess_burst_capacity(spec: DeciderSpec, ready: np.ndarray,
                          panic: np.ndarray) -> np.ndarray:
    """:func:`scaler.decide.kpa.excess_burst_capacity` for every tick: ``ready`` pods and
    the ``panic`` average per tick; NaN where the panic average is NaN (no decision)."""
    if spec.target_burst_capacity == 0:
        ebc = np.zeros(len(ready))
    elif spec.target_burst_capacity > 0:
        ebc = np.floor(ready.astype(np.float64) * spec.total_value
                       - spec.target_burst_capacity - panic)
        # go_int32: anything outside int32 becomes its minimum.
        out_of_range = ~((ebc >= -(2.0**31)) & (ebc < 2.0**31))
        ebc = np.where(out_of_range & ~np.isnan(panic), -(2.0**31), ebc)
    else:
        ebc = np.full(len(ready), -1.0)
    return np.where(np.isnan(panic), np.nan, ebc)
