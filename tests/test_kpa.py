"""scaler.kpa: Knative's KPA decider, case by case against reference/knative-kpa.md, and
the helpers replay's fast engine uses to skip ticks (scaler.decide.kpa).

Every expected value below was worked out by hand from the reference (§3 the decider,
§3.4 the scale-down-delay max window, §6 timelines, §8 quick formulas); the arithmetic is
written next to each case so a reader can check it without running anything.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaler.decide import kpa_batch
from scaler.decide.kpa import Steady, excess_burst_capacity, fast_forward, panic_limit, steady
from scaler.decide.windows import BucketWindow
from scaler.kpa import DeciderSpec, DeciderState, Decision, decide, go_int32, initial_state

INT32_MIN = -(2**31)
NOW = 1000.0

# Production defaults (§1.1, §2, §8): concurrency target 100 × 0.7 = 70, total 100,
# TBC 211, panic 200 %, max scale up 1000, max scale down 2, stable window 60 s.
DEFAULTS = DeciderSpec(
    target_value=70.0,
    total_value=100.0,
    target_burst_capacity=211.0,
    panic_threshold=2.0,
    max_scale_up_rate=1000.0,
    max_scale_down_rate=2.0,
    stable_window=60.0,
    scale_down_delay=0.0,
    activation_scale=0,
    reachable=True,
)
CALM = DeciderState()
INVALID = Decision(valid=False, desired_pods=0, excess_burst_capacity=0, in_panic=False)


def spec(**overrides: object) -> DeciderSpec:
    return dataclasses.replace(DEFAULTS, **overrides)


def panicking(since: float, max_pods: int) -> DeciderState:
    return DeciderState(panic_time=since, max_panic_pods=max_pods)


def ok(desired: int, ebc: int, in_panic: bool = False) -> Decision:
    return Decision(valid=True, desired_pods=desired, excess_burst_capacity=ebc, in_panic=in_panic)


# --------------------------------------------------------------------------------------
# One tick: (spec, state before, ready, S, P) → (whole Decision, whole state after)

DECIDE_CASES = [
    # ---- stable mode: desired = ceil(S / target), EBC = floor(ready·100 − 211 − P)
    pytest.param(
        # dspc = ceil(141/70) = 3; clamps [floor(3/2)=1, 3000]; dppc 3, 3/3 < 2;
        # EBC = floor(300 − 211 − 141) = −52
        DEFAULTS, CALM, 3, 141.0, 141.0, ok(3, -52), CALM,
        id="stable-ceil-of-S-over-target",
    ),
    pytest.param(
        # ceil(140/70) = 2 exactly, no extra pod; EBC = 300 − 211 − 140 = −51
        DEFAULTS, CALM, 3, 140.0, 140.0, ok(2, -51), CALM,
        id="stable-exact-multiple-no-extra-pod",
    ),
    pytest.param(
        # ceil(140.000001/70) = 3; EBC = floor(−51.000001) = −52
        DEFAULTS, CALM, 3, 140.000001, 140.000001, ok(3, -52), CALM,
        id="stable-just-over-multiple-adds-a-pod",
    ),
    # ---- max scale up: ceil(rate × R)
    pytest.param(
        # dspc = 10, maxScaleUp = ceil(2 × 2) = 4; EBC = floor(200 − 211 − 0) = −11
        spec(max_scale_up_rate=2.0), CALM, 2, 700.0, 0.0, ok(4, -11), CALM,
        id="max-scale-up-clamps",
    ),
    pytest.param(
        # the reference's comment: rate 1.1, ready 2 → ceil(2.2) = 3, so stable 3 at
        # target 1 gives 3 (ceil lets a conservative rate still add a pod); dppc 3/2 < 2
        spec(target_value=1.0, max_scale_up_rate=1.1, target_burst_capacity=0.0),
        CALM, 2, 3.0, 3.0, ok(3, 0), CALM,
        id="max-scale-up-rate-1.1-ceil-allows-3",
    ),
    pytest.param(
        # same clamp, more load: still ceil(1.1 × 2) = 3
        spec(target_value=1.0, max_scale_up_rate=1.1, target_burst_capacity=0.0),
        CALM, 2, 10.0, 0.0, ok(3, 0), CALM,
        id="max-scale-up-rate-1.1-clamps-at-3",
    ),
    pytest.param(
        # R = max(1, 0) = 1 → maxScaleUp = ceil(2 × 1) = 2; EBC uses ready 0: −211
        spec(max_scale_up_rate=2.0), CALM, 0, 700.0, 0.0, ok(2, -211), CALM,
        id="max-scale-up-zero-ready-uses-R-1",
    ),
    # ---- max scale down: floor(R / rate), only when reachable
    pytest.param(
        # floor(10/2) = 5; EBC = 1000 − 211 = 789
        DEFAULTS, CALM, 10, 0.0, 0.0, ok(5, 789), CALM,
        id="max-scale-down-halves",
    ),
    pytest.param(
        # floor(5/2) = floor(2.5) = 2; EBC = 500 − 211 = 289
        DEFAULTS, CALM, 5, 0.0, 0.0, ok(2, 289), CALM,
        id="max-scale-down-floors",
    ),
    pytest.param(
        # floor(10/3) = 3
        spec(max_scale_down_rate=3.0), CALM, 10, 0.0, 0.0, ok(3, 789), CALM,
        id="max-scale-down-rate-3",
    ),
    pytest.param(
        # floor(1/2) = 0: the last pod can go; EBC = 100 − 211 = −111
        DEFAULTS, CALM, 1, 0.0, 0.0, ok(0, -111), CALM,
        id="max-scale-down-one-to-zero",
    ),
    pytest.param(
        # unreachable: maxScaleDown = 0, so 10 → 0 in one tick
        spec(reachable=False), CALM, 10, 0.0, 0.0, ok(0, 789), CALM,
        id="unreachable-no-max-scale-down",
    ),
    pytest.param(
        # ready 0: R = 1, maxScaleDown = floor(1/2) = 0; dspc = 1; dppc 1/1 < 2;
        # EBC = floor(0 − 211 − 1) = −212
        DEFAULTS, CALM, 0, 1.0, 1.0, ok(1, -212), CALM,
        id="zero-ready-scale-from-zero",
    ),
    pytest.param(
        DEFAULTS, CALM, 0, 0.0, 0.0, ok(0, -211), CALM,
        id="zero-ready-no-load-stays-zero",
    ),
    # ---- activation scale: after the clamps, never lifting a zero raw count
    pytest.param(
        # dspc 1 → 5; EBC = 100 − 211 = −111
        spec(activation_scale=5), CALM, 1, 1.0, 0.0, ok(5, -111), CALM,
        id="activation-lifts-nonzero",
    ),
    pytest.param(
        # maxScaleUp = ceil(2 × 1) = 2 clamps to 1… then activation lifts to 5 > 2
        spec(activation_scale=5, max_scale_up_rate=2.0), CALM, 1, 1.0, 0.0, ok(5, -111), CALM,
        id="activation-exceeds-max-scale-up",
    ),
    pytest.param(
        spec(activation_scale=5), CALM, 1, 0.0, 0.0, ok(0, -111), CALM,
        id="activation-never-lifts-zero",
    ),
    pytest.param(
        # dspc 0 → clamped up to floor(4/2) = 2, but the raw count is 0: stays 2
        spec(activation_scale=5), CALM, 4, 0.0, 0.0, ok(2, 189), CALM,
        id="activation-zero-raw-keeps-clamped-count",
    ),
    pytest.param(
        # ceil(700/70) = 10 > 2: no effect; EBC = 500 − 211 = 289
        spec(activation_scale=2), CALM, 5, 700.0, 0.0, ok(10, 289), CALM,
        id="activation-below-desired-no-effect",
    ),
    pytest.param(
        spec(activation_scale=1), CALM, 1, 1.0, 0.0, ok(1, -111), CALM,
        id="activation-1-is-off",
    ),
    pytest.param(
        # dspc 0 stays 0; dppc = ceil(140/70) = 2, 2/1 ≥ 2 → panic; panic count 2 → 5;
        # desired = max(0, 5) = 5; EBC = floor(100 − 211 − 140) = −251
        spec(activation_scale=5), CALM, 1, 0.0, 140.0, ok(5, -251, True), panicking(NOW, 5),
        id="activation-lifts-panic-count",
    ),
    # ---- panic: entry, threshold, ratchet, extension, exit
    pytest.param(
        # dppc = ceil(211/70) = 4, 4/2 = 2 ≥ 2 → enter; stable max(1, floor(2/2)) = 1;
        # desired = max(1, 4) = 4; EBC = floor(200 − 211 − 211) = −222
        DEFAULTS, CALM, 2, 70.0, 211.0, ok(4, -222, True), panicking(NOW, 4),
        id="panic-entry-at-threshold",
    ),
    pytest.param(
        # dppc = ceil(210/70) = 3, 3/2 = 1.5 < 2; EBC = −221
        DEFAULTS, CALM, 2, 70.0, 210.0, ok(1, -221), CALM,
        id="panic-just-below-threshold",
    ),
    pytest.param(
        # maxScaleUp = ceil(1.5 × 2) = 3; dppc = 4 (clamped 3 → 3/2 = 1.5 would not
        # panic), the test uses the unclamped 4/2 = 2 → panic; desired = 3;
        # EBC = floor(200 − 211 − 280) = −291
        spec(max_scale_up_rate=1.5), CALM, 2, 0.0, 280.0, ok(3, -291, True), panicking(NOW, 3),
        id="panic-entry-uses-unclamped-count",
    ),
    pytest.param(
        # over again (ceil(300/70) = 5, 5/2 ≥ 2): panic_time moves to now; 5 > 4 ratchets up;
        # EBC = floor(200 − 211 − 300) = −311
        DEFAULTS, panicking(NOW - 30, 4), 2, 70.0, 300.0, ok(5, -311, True), panicking(NOW, 5),
        id="panic-extends-on-over-threshold",
    ),
    pytest.param(
        # stable = panic = max(1, floor(10/2)) = 5 < 10: the ratchet holds 10;
        # EBC = floor(1000 − 211 − 70) = 719
        DEFAULTS, panicking(NOW - 10, 10), 10, 70.0, 70.0, ok(10, 719, True),
        panicking(NOW - 10, 10),
        id="panic-ratchet-never-decreases",
    ),
    pytest.param(
        # stable 10, panic ceil(140/70) = 2 (2/2 = 1, not over): max(10, 2) = 10 > 2;
        # panic_time unchanged; EBC = floor(200 − 211 − 140) = −151
        DEFAULTS, panicking(NOW - 10, 2), 2, 700.0, 140.0, ok(10, -151, True),
        panicking(NOW - 10, 10),
        id="panic-takes-larger-of-stable-and-panic",
    ),
    pytest.param(
        # panic_time + 60 = now is not before now: still panicking, holds 6;
        # EBC = 600 − 211 = 389
        DEFAULTS, panicking(NOW - 60, 6), 6, 0.0, 0.0, ok(6, 389, True), panicking(NOW - 60, 6),
        id="panic-holds-at-exactly-one-stable-window",
    ),
    pytest.param(
        # panic_time + 60 < now: exit, max_panic_pods reset; stable floor(6/2) = 3
        DEFAULTS, panicking(NOW - 61, 6), 6, 0.0, 0.0, ok(3, 389), CALM,
        id="panic-exits-after-more-than-one-stable-window",
    ),
    pytest.param(
        DEFAULTS, panicking(NOW - 60.001, 6), 6, 0.0, 0.0, ok(3, 389), CALM,
        id="panic-exits-just-after-one-stable-window",
    ),
    pytest.param(
        # over threshold long after the last extension: extended, not exited
        DEFAULTS, panicking(NOW - 100, 4), 2, 0.0, 300.0, ok(5, -311, True), panicking(NOW, 5),
        id="panic-no-exit-while-over-threshold",
    ),
    pytest.param(
        # stable window 10: exit at > 10 s; stable floor(4/2) = 2; EBC = 400 − 211 = 189
        spec(stable_window=10.0), panicking(NOW - 11, 4), 4, 0.0, 0.0, ok(2, 189), CALM,
        id="panic-exit-follows-stable-window-10",
    ),
    pytest.param(
        spec(stable_window=10.0), panicking(NOW - 10, 4), 4, 0.0, 0.0, ok(4, 189, True),
        panicking(NOW - 10, 4),
        id="panic-holds-at-stable-window-10",
    ),
    pytest.param(
        # threshold 1.5: dppc = ceil(150/70) = 3, 3/2 = 1.5 ≥ 1.5; EBC = 200 − 211 − 150
        spec(panic_threshold=1.5), CALM, 2, 0.0, 150.0, ok(3, -161, True), panicking(NOW, 3),
        id="panic-threshold-1.5",
    ),
    # ---- excess burst capacity (from ready, not R)
    pytest.param(
        # desired: dspc 0 → floor(3/2) = 1; dppc 1, 1/3 < 2
        spec(target_burst_capacity=0.0), CALM, 3, 0.0, 50.0, ok(1, 0), CALM,
        id="ebc-tbc-0-is-0",
    ),
    pytest.param(
        spec(target_burst_capacity=-1.0), CALM, 3, 0.0, 50.0, ok(1, -1), CALM,
        id="ebc-tbc-minus-1-is-minus-1",
    ),
    pytest.param(
        # floor(300 − 211 − 50) = 39
        DEFAULTS, CALM, 3, 0.0, 50.0, ok(1, 39), CALM,
        id="ebc-tbc-positive",
    ),
    pytest.param(
        # floor(300 − 211 − 50.5) = floor(38.5) = 38
        DEFAULTS, CALM, 3, 0.0, 50.5, ok(1, 38), CALM,
        id="ebc-floors-positive-fraction",
    ),
    pytest.param(
        # floor(100 − 211 − 0.5) = floor(−111.5) = −112 (floor, not truncation)
        DEFAULTS, CALM, 1, 0.0, 0.5, ok(0, -112), CALM,
        id="ebc-floors-negative-fraction",
    ),
    pytest.param(
        # ready 0: floor(0·100 − 211 − 0) = −211 (R = 1 would give −111)
        DEFAULTS, CALM, 0, 0.0, 0.0, ok(0, -211), CALM,
        id="ebc-uses-ready-not-R",
    ),
    pytest.param(
        # total 25, TBC 42, ready 2: floor(50 − 42 − 0) = 8
        spec(total_value=25.0, target_burst_capacity=42.0), CALM, 2, 0.0, 0.0, ok(1, 8), CALM,
        id="ebc-custom-total-and-tbc",
    ),
    # ---- int32 conversion of the results
    pytest.param(
        # dspc = maxScaleUp = 1e10: int32(1e10) on amd64 is 0x80000000
        spec(target_value=1.0, max_scale_up_rate=1e10, target_burst_capacity=0.0),
        CALM, 1, 1e10, 0.0, ok(INT32_MIN, 0), CALM,
        id="desired-int32-overflow",
    ),
    pytest.param(
        # floor(1e10 − 1 − 0) does not fit in int32
        spec(total_value=1e10, target_burst_capacity=1.0), CALM, 1, 0.0, 0.0,
        ok(0, INT32_MIN), CALM,
        id="ebc-int32-overflow",
    ),
    pytest.param(
        spec(target_burst_capacity=1e10), CALM, 1, 0.0, 0.0, ok(0, INT32_MIN), CALM,
        id="ebc-int32-negative-overflow",
    ),
    # ---- extreme averages: Go's float arithmetic saturates, nothing raises
    pytest.param(
        # dspc = dppc = +Inf; Min(Max(+Inf, 1), ceil(1000·3) = 3000) = 3000; +Inf/3 ≥ 2:
        # panic, ratchet to 3000; EBC = floor(300 − 211 − Inf) = −Inf → int32 0x80000000
        DEFAULTS, CALM, 3, math.inf, math.inf, ok(3000, INT32_MIN, True), panicking(NOW, 3000),
        id="plus-inf-saturates-at-max-scale-up",
    ),
    pytest.param(
        # ceil(1e308/70) is finite and huge: the same clamp; EBC floor(89 − 1e308) → int32 min
        DEFAULTS, CALM, 3, 1e308, 1e308, ok(3000, INT32_MIN, True), panicking(NOW, 3000),
        id="1e308-saturates-at-max-scale-up",
    ),
    pytest.param(
        # 1e308 / 0.01 overflows to +Inf in the division itself, as in Go
        spec(target_value=0.01), CALM, 3, 1e308, 0.0, ok(3000, 89), CALM,
        id="1e308-over-a-tiny-target-is-inf-not-an-error",
    ),
    pytest.param(
        # inf − inf in a window gives NaN: Max(NaN, 1) = NaN, int32(NaN) = 0x80000000;
        # NaN/3 ≥ 2 is false; EBC floor(… − NaN) = NaN → 0x80000000
        DEFAULTS, CALM, 3, math.nan, math.nan, ok(INT32_MIN, INT32_MIN), CALM,
        id="nan-converts-as-go-does",
    ),
    pytest.param(
        # Max(-0.0, 0.0) is +0 in Go; a -0.0 average decides like 0
        DEFAULTS, CALM, 1, -0.0, -0.0, ok(0, -111), CALM,
        id="minus-zero-average",
    ),
    # ---- no panic data (the panic window's seconds unknown): read the stable average
    pytest.param(
        # as stable 141, panic 141: 3 pods, EBC = floor(300 − 211 − 141) = −52
        DEFAULTS, CALM, 3, 141.0, None, ok(3, -52), CALM,
        id="no-panic-data-reads-the-stable-average",
    ),
    pytest.param(
        # stable 700 at 3 ready: ceil(700/70) = 10 ≥ 2 × 3 → the stable view alone panics
        DEFAULTS, CALM, 3, 700.0, None, ok(10, -611, True), panicking(NOW, 10),
        id="no-panic-data-with-a-stable-surge-still-panics",
    ),
    pytest.param(
        # panicking at 8 since 61 s ago, stable 70, no panic data: the stable view is calm
        # (ceil(70/70) = 1, 1/8 < 2) and a stable window has passed, so panic ends as it
        # would with a panic average of 70; the count halves at most: floor(8/2) = 4;
        # EBC = floor(800 − 211 − 70) = 519
        DEFAULTS, panicking(NOW - 61, 8), 8, 70.0, None, ok(4, 519), CALM,
        id="no-panic-data-ends-panic-only-as-the-stable-view-would",
    ),
    # ---- invalid: no data or no ready count → nothing changes
    pytest.param(
        DEFAULTS, DeciderState(NOW - 1000, 7, 3, ((400, 7),)), 2, None, 0.0, INVALID,
        DeciderState(NOW - 1000, 7, 3, ((400, 7),)),
        id="invalid-no-stable-data",
    ),
    pytest.param(
        DEFAULTS, DeciderState(NOW - 1000, 7, 3, ((400, 7),)), None, 100.0, 100.0, INVALID,
        DeciderState(NOW - 1000, 7, 3, ((400, 7),)),
        id="invalid-no-ready-count",
    ),
    pytest.param(
        DEFAULTS, CALM, None, None, None, INVALID, CALM,
        id="invalid-nothing-known",
    ),
]


@pytest.mark.parametrize("sp, state, ready, stable, panic, want, want_state", DECIDE_CASES)
def test_decide(
    sp: DeciderSpec,
    state: DeciderState,
    ready: int | None,
    stable: float | None,
    panic: float | None,
    want: Decision,
    want_state: DeciderState,
) -> None:
    got, got_state = decide(sp, state, NOW, ready, stable, panic)
    assert got == want
    assert got_state == want_state


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.floats(), st.sampled_from([math.inf, -math.inf, 1e308, -1e308, math.nan])),
       st.one_of(st.none(), st.floats()), st.integers(0, 2**31 - 1),
       st.sampled_from([DEFAULTS, spec(target_value=0.01), spec(activation_scale=3),
                        spec(scale_down_delay=30.0), spec(reachable=False)]))
def test_decide_never_raises_and_stays_in_int32(stable: float, panic: float | None,
                                                ready: int, sp: DeciderSpec) -> None:
    """Whatever the averages, Go returns numbers: so does decide, every count an int32."""
    state = initial_state(sp, ready, NOW)
    got, after = decide(sp, state, NOW, ready, stable, panic)
    assert got.valid
    assert INT32_MIN <= got.desired_pods < 2**31
    assert INT32_MIN <= got.excess_burst_capacity < 2**31
    assert INT32_MIN <= after.max_panic_pods < 2**31 or after.max_panic_pods == ready
    steady(sp, state, after, ready, stable)   # replay's fast engine asks this too


def test_invalid_returns_the_same_state() -> None:
    state = DeciderState(NOW - 1000, 7, 3, ((400, 7),))
    assert decide(DEFAULTS, state, NOW, 2, None, 0.0)[1] is state
    assert decide(DEFAULTS, state, NOW, None, 100.0, 100.0)[1] is state


# --------------------------------------------------------------------------------------
# §8 quick formulas at production defaults


@pytest.mark.parametrize(
    "sp, ready, stable, panic, want",
    [
        # concurrency: target 70, total 100
        pytest.param(DEFAULTS, 1, 0.0, 0.0, ok(0, -111), id="conc-1-ready-idle"),
        pytest.param(DEFAULTS, 1, 69.0, 69.0, ok(1, -180), id="conc-1-ready-69"),
        # ceil(71/70) = 2 and 2/1 ≥ 2: panic; EBC = floor(100 − 211 − 71) = −182
        pytest.param(DEFAULTS, 1, 71.0, 71.0, ok(2, -182, True), id="conc-1-ready-71-panics"),
        pytest.param(DEFAULTS, 4, 280.0, 280.0, ok(4, -91), id="conc-4-ready-280"),
        pytest.param(DEFAULTS, 4, 0.0, 0.0, ok(2, 189), id="conc-4-ready-idle-halves"),
        # ceil(1400/70) = 20, 20/10 = 2: panic; EBC = 1000 − 211 − 1400 = −611
        pytest.param(DEFAULTS, 10, 700.0, 1400.0, ok(20, -611, True), id="conc-10-ready-panic"),
        # ceil(1330/70) = 19, 1.9 < 2; EBC = 1000 − 211 − 1330 = −541
        pytest.param(DEFAULTS, 10, 700.0, 1330.0, ok(10, -541), id="conc-10-ready-no-panic"),
        # a tiny stable average (issue #12966) keeps ceil(S/70) = 1
        pytest.param(DEFAULTS, 3, 0.000001, 0.0, ok(1, 89), id="conc-tiny-S-keeps-one"),
        # ceil(350000/70) = 5000 > ceil(1000 × 2) = 2000
        pytest.param(DEFAULTS, 2, 350000.0, 0.0, ok(2000, -11), id="conc-max-up-1000x"),
        # rps: target 140, total 200; ceil(280/140) = 2; EBC = 400 − 211 − 280 = −91
        pytest.param(
            spec(target_value=140.0, total_value=200.0), 2, 280.0, 280.0, ok(2, -91),
            id="rps-2-ready-280",
        ),
        # dspc ceil(420/140) = 3; dppc ceil(560/140) = 4, 4/2 = 2: panic, max(3, 4) = 4;
        # EBC = floor(400 − 211 − 560) = −371
        pytest.param(
            spec(target_value=140.0, total_value=200.0), 2, 420.0, 560.0, ok(4, -371, True),
            id="rps-2-ready-panic",
        ),
    ],
)
def test_quick_formulas_at_defaults(
    sp: DeciderSpec, ready: int, stable: float, panic: float, want: Decision
) -> None:
    got, _ = decide(sp, CALM, NOW, ready, stable, panic)
    assert got == want


@pytest.mark.parametrize(
    "ready, panic, ebc",
    [
        pytest.param(0, 0.0, -211, id="0-ready"),
        pytest.param(1, 0.0, -111, id="1-ready"),
        pytest.param(2, 0.0, -11, id="2-ready-activator-stays"),
        pytest.param(3, 0.0, 89, id="3-ready-activator-leaves"),
        pytest.param(3, 89.0, 0, id="3-ready-exactly-zero"),
        pytest.param(3, 89.5, -1, id="3-ready-just-negative"),
        pytest.param(5, 17.25, 271, id="5-ready-fraction"),
    ],
)
def test_excess_burst_capacity_default_numbers(ready: int, panic: float, ebc: int) -> None:
    """§5.2: with defaults EBC = floor(100·ready − 211 − P)."""
    got, _ = decide(DEFAULTS, CALM, NOW, ready, 0.0, panic)
    assert got.excess_burst_capacity == ebc


def test_three_ready_pods_needed_before_activator_leaves_path() -> None:
    """§5.2: "a revision needs ≥3 ready pods at zero load before the activator leaves"."""
    ebc = {r: decide(DEFAULTS, CALM, NOW, r, 0.0, 0.0)[0].excess_burst_capacity for r in range(6)}
    assert [r for r, e in ebc.items() if e >= 0] == [3, 4, 5]


# --------------------------------------------------------------------------------------
# go_int32 and initial_state


@pytest.mark.parametrize(
    "x, want",
    [
        pytest.param(0.0, 0, id="zero"),
        pytest.param(3.9, 3, id="truncates-positive"),
        pytest.param(-3.9, -3, id="truncates-negative-toward-zero"),
        pytest.param(2147483647.0, 2147483647, id="int32-max"),
        pytest.param(2147483647.9, 2147483647, id="int32-max-fraction"),
        pytest.param(2147483648.0, INT32_MIN, id="int32-max-plus-1"),
        pytest.param(-2147483648.0, INT32_MIN, id="int32-min"),
        pytest.param(-2147483649.0, INT32_MIN, id="int32-min-minus-1"),
        pytest.param(1e10, INT32_MIN, id="large-positive"),
        pytest.param(-1e10, INT32_MIN, id="large-negative"),
        pytest.param(math.inf, INT32_MIN, id="inf"),
        pytest.param(-math.inf, INT32_MIN, id="minus-inf"),
        pytest.param(math.nan, INT32_MIN, id="nan"),
    ],
)
def test_go_int32(x: float, want: int) -> None:
    assert go_int32(x) == want


@pytest.mark.parametrize(
    "delay, ready, want",
    [
        pytest.param(0.0, None, DeciderState(None, 0, 0, ()), id="unknown-ready-calm"),
        pytest.param(0.0, 0, DeciderState(None, 0, 0, ()), id="0-ready-calm"),
        pytest.param(0.0, 1, DeciderState(None, 1, 0, ()), id="1-ready-calm"),
        pytest.param(0.0, 2, DeciderState(NOW, 2, 0, ()), id="2-ready-panics"),
        pytest.param(0.0, 7, DeciderState(NOW, 7, 0, ()), id="7-ready-panics"),
        # window of ceil(delay / 2 s) buckets
        pytest.param(300.0, 3, DeciderState(NOW, 3, 150, ()), id="delay-300-150-buckets"),
        pytest.param(5.0, 0, DeciderState(None, 0, 3, ()), id="delay-5-3-buckets"),
        pytest.param(2.0, 0, DeciderState(None, 0, 1, ()), id="delay-2-1-bucket"),
        pytest.param(1.0, 0, DeciderState(None, 0, 1, ()), id="delay-1-1-bucket"),
    ],
)
def test_initial_state(delay: float, ready: int | None, want: DeciderState) -> None:
    assert initial_state(spec(scale_down_delay=delay), ready, NOW) == want


def test_restarted_decider_holds_ready_count_for_a_stable_window() -> None:
    """§3.2: New() with 5 ready pods starts panicking with maxPanicPods = 5, so an idle
    revision keeps 5 until one stable window has passed, then halves."""
    state = initial_state(DEFAULTS, 5, 1000.0)
    for t in range(1000, 1061, 2):
        got, state = decide(DEFAULTS, state, float(t), 5, 0.0, 0.0)
        assert got == ok(5, 289, True), t   # EBC = 500 − 211
    got, state = decide(DEFAULTS, state, 1062.0, 5, 0.0, 0.0)
    assert got == ok(2, 289)                # floor(5/2)
    assert state == CALM


# --------------------------------------------------------------------------------------
# Panic timeline (§6): target 70, 2 ready pods, panic when P > 210


def test_panic_timeline_section_6() -> None:
    steps = [
        # (t, ready, S, P) → Decision; EBC = floor(100·ready − 211 − P)
        (100, 2, 100.0, 100.0, ok(2, -111)),          # dppc 2, 2/2 = 1
        (102, 2, 105.0, 210.0, ok(2, -221)),          # dppc 3, 1.5 < 2
        (104, 2, 110.0, 210.01, ok(4, -222, True)),   # dppc 4, 4/2 = 2: enter panic
        (106, 2, 120.0, 150.0, ok(4, -161, True)),    # max(2, 3) = 3 < 4: ratchet holds
        (108, 4, 150.0, 420.0, ok(6, -231, True)),    # dppc 6, 6/4 < 2: rises to 6
    ]
    # ready 6, S 200 (dspc 3, floor(6/2) = 3), P 100 (dppc 2): never over again
    for t in range(110, 165, 2):
        steps.append((t, 6, 200.0, 100.0, ok(6, 289, True)))   # held until 104 + 60
    steps.append((166, 6, 200.0, 100.0, ok(3, 289)))            # 104 + 60 < 166: exit
    state = CALM
    for t, ready, s, p, want in steps:
        got, state = decide(DEFAULTS, state, float(t), ready, s, p)
        assert got == want, t
        if t == 104:
            assert state.panic_time == 104.0
    assert state == CALM


def test_panic_timeline_with_windows() -> None:
    """§6 end to end: 100 in flight every second, 400 from t = 120; 1 s buckets with a
    60 s stable and a 6 s panic window, ticks every 2 s, 2 ready pods.

    The decider is built at t = 0 with 2 ready pods, so it panics until 0 + 60 < t (t = 62).
    At t = 120 the panic window holds 100×5 + 400 = 900 → P = 150, ceil(150/70) = 3, 1.5 < 2.
    At t = 122 it holds 100×3 + 400×3 = 1500 → P = 250, ceil(250/70) = 4, 4/2 = 2: panic,
    while S = (100×57 + 400×3)/60 = 115 → ceil = 2; desired = max(2, 4) = 4.
    """
    stable, panic = BucketWindow(60), BucketWindow(6)
    state = initial_state(DEFAULTS, 2, 0.0)
    seen: dict[int, tuple[float, float, Decision]] = {}
    for t in range(125):
        load = 100.0 if t < 120 else 400.0
        stable.record(float(t), load)
        panic.record(float(t), load)
        if t % 2 == 0:
            s, p = stable.average(float(t)), panic.average(float(t))
            got, state = decide(DEFAULTS, state, float(t), 2, s, p)
            seen[t] = (s, p, got)
    assert [t for t, (_, _, d) in seen.items() if d.in_panic] == [
        *range(0, 61, 2), 122, 124
    ]
    assert seen[60][2] == ok(2, -111, True)     # EBC = 200 − 211 − 100
    assert seen[62][2] == ok(2, -111)
    assert seen[120] == (105.0, 150.0, ok(2, -161))  # S = (100×59 + 400)/60
    assert seen[122] == (115.0, 250.0, ok(4, -261, True))


# --------------------------------------------------------------------------------------
# Scale-down delay (§3.4): a max window of ceil(delay / 2 s) buckets, index = unix // 2

# target 1 and ready 0 (R = 1, maxScaleDown = floor(1/2) = 0, maxScaleUp = 1000): the raw
# count is exactly S, so each step records S into the window; P = 0 never panics.
PASS_THROUGH = spec(target_value=1.0, target_burst_capacity=0.0)


def run(sp: DeciderSpec, state: DeciderState, t: float, s: float) -> tuple[int, DeciderState]:
    got, state = decide(sp, state, t, 0, s, 0.0)
    assert got.valid and not got.in_panic
    return got.desired_pods, state


def test_scale_down_delay_knative_scenario() -> None:
    """knative's TestAutoscalerScaleDownDelay: target 10, rates 10, delay 5 min."""
    sp = spec(
        target_value=10.0, max_scale_up_rate=10.0, max_scale_down_rate=10.0,
        panic_threshold=100.0, scale_down_delay=300.0, target_burst_capacity=0.0,
    )
    state = initial_state(sp, 0, 0.0)
    assert state.delay_buckets == 150

    def step(t: float, load: float) -> Decision:
        nonlocal state
        got, state = decide(sp, state, t, 0, load, load)
        return got

    assert step(2.0, 40.0) == ok(4, 0)      # ceil(40/10) = 4, index 1
    assert step(300.0, 0.0) == ok(4, 0)     # index 150: 150 − 1 < 150, still visible
    assert step(302.0, 0.0) == ok(0, 0)     # index 151: 151 − 1 ≥ 150, gone
    assert step(304.0, 20.0) == ok(2, 0)    # index 152
    assert step(306.0, 0.0) == ok(2, 0)
    assert step(602.0, 0.0) == ok(2, 0)     # index 301: 301 − 152 = 149
    assert step(604.0, 0.0) == ok(0, 0)     # index 302: 150, gone


def test_scale_down_delay_deque() -> None:
    """The "descending maxima" deque, step by step, delay 10 s → 5 buckets."""
    state = initial_state(spec(target_value=1.0, scale_down_delay=10.0), 0, 0.0)
    assert state.delay_buckets == 5
    steps = [
        # (t, S) → (desired, deque as ((index, value), ...))
        (0, 5, 5, ((0, 5),)),
        (2, 3, 5, ((0, 5), (1, 3))),
        (4, 4, 5, ((0, 5), (2, 4))),                # 3 ≤ 4 dropped from the tail
        (6, 1, 5, ((0, 5), (2, 4), (3, 1))),
        (8, 1, 5, ((0, 5), (2, 4), (4, 1))),        # equal value: the newer one stays
        (10, 0, 4, ((2, 4), (4, 1), (5, 0))),       # 5 − 0 ≥ 5: head expires
        (12, 0, 4, ((2, 4), (4, 1), (6, 0))),
        (14, 0, 1, ((4, 1), (7, 0))),
        (16, 0, 1, ((4, 1), (8, 0))),
        (18, 0, 0, ((9, 0),)),
    ]
    for t, s, want, window in steps:
        desired, state = run(PASS_THROUGH, state, float(t), float(s))
        assert (desired, state.delay_window) == (want, window), t
        assert state.delay_buckets == 5


def test_scale_down_delay_same_bucket_keeps_max() -> None:
    state = initial_state(spec(scale_down_delay=10.0), 0, 0.0)
    steps = [
        (10.0, 4, 4, ((5, 4),)),
        (11.0, 2, 4, ((5, 4),)),           # same 2 s bucket: the larger stays
        (11.5, 6, 6, ((5, 6),)),           # same bucket, larger: replaced
        (12.0, 1, 6, ((5, 6), (6, 1))),
    ]
    for t, s, want, window in steps:
        desired, state = run(PASS_THROUGH, state, t, float(s))
        assert (desired, state.delay_window) == (want, window), t


def test_scale_down_delay_gap_expires_every_stale_entry() -> None:
    state = initial_state(spec(scale_down_delay=10.0), 0, 0.0)
    for t, s in [(0.0, 5.0), (2.0, 3.0), (4.0, 1.0)]:
        _, state = run(PASS_THROUGH, state, t, s)
    assert state.delay_window == ((0, 5), (1, 3), (2, 1))
    desired, state = run(PASS_THROUGH, state, 100.0, 0.0)
    assert (desired, state.delay_window) == (0, ((50, 0),))


def test_scale_down_delay_capacity_lives_in_state() -> None:
    """§3.2: Update() never creates, removes or resizes the window."""
    state = initial_state(spec(scale_down_delay=10.0), 0, 0.0)      # 5 buckets
    _, state = run(spec(target_value=1.0, scale_down_delay=0.0), state, 0.0, 4.0)
    # a spec with no delay, then one with a long delay: still 5 buckets
    desired, state = run(spec(target_value=1.0, scale_down_delay=0.0), state, 8.0, 0.0)
    assert desired == 4                                             # index 4 − 0 < 5
    desired, state = run(spec(target_value=1.0, scale_down_delay=600.0), state, 10.0, 0.0)
    assert desired == 0                                             # index 5 − 0 ≥ 5
    assert state.delay_buckets == 5

    # built without a delay, a later spec with one changes nothing
    state = initial_state(spec(scale_down_delay=0.0), 0, 0.0)
    _, state = run(spec(target_value=1.0, scale_down_delay=300.0), state, 0.0, 4.0)
    desired, state = run(spec(target_value=1.0, scale_down_delay=300.0), state, 2.0, 0.0)
    assert desired == 0
    assert state == CALM


def test_scale_down_delay_unreachable_bypasses_window() -> None:
    state = initial_state(spec(scale_down_delay=10.0), 0, 0.0)
    desired, state = run(PASS_THROUGH, state, 2.0, 4.0)
    assert desired == 4
    unreachable = spec(target_value=1.0, reachable=False)
    desired, state = run(unreachable, state, 4.0, 0.0)
    assert desired == 0                              # not held, and nothing recorded
    assert state.delay_window == ((1, 4),)
    desired, state = run(PASS_THROUGH, state, 6.0, 0.0)
    assert desired == 4                              # reachable again: index 3 − 1 < 5
    assert state.delay_window == ((1, 4), (3, 0))


@pytest.mark.parametrize(
    "t, index",
    [
        pytest.param(0.0, 0, id="0"),
        pytest.param(1.0, 0, id="1"),
        pytest.param(1.9, 0, id="1.9"),
        pytest.param(2.0, 1, id="2"),
        pytest.param(3.0, 1, id="3"),
        pytest.param(301.5, 150, id="301.5"),
        # Go: int(now.Unix()) / 2 — Unix() floors, integer division truncates toward 0
        pytest.param(-0.5, 0, id="minus-0.5"),
        pytest.param(-1.0, 0, id="minus-1"),
        pytest.param(-2.0, -1, id="minus-2"),
        pytest.param(-2.5, -1, id="minus-2.5"),
        pytest.param(-3.0, -1, id="minus-3"),
        pytest.param(-4.0, -2, id="minus-4"),
    ],
)
def test_scale_down_delay_bucket_index(t: float, index: int) -> None:
    state = initial_state(spec(scale_down_delay=10.0), 0, t)
    _, state = run(PASS_THROUGH, state, t, 1.0)
    assert state.delay_window == ((index, 1),)


# --------------------------------------------------------------------------------------
# Properties


@st.composite
def decider_states(draw: st.DrawFn) -> DeciderState:
    buckets = draw(st.integers(0, 10))
    window: tuple[tuple[int, int], ...] = ()
    if buckets:
        # a valid deque: ascending indexes within capacity, strictly descending values
        values = sorted(set(draw(st.lists(st.integers(0, 50), max_size=buckets))), reverse=True)
        start = draw(st.integers(400, 500))
        window = tuple((start + i, v) for i, v in enumerate(values))
    panic_time = draw(st.one_of(st.none(), st.floats(NOW - 200, NOW)))
    return DeciderState(
        panic_time=panic_time,
        max_panic_pods=draw(st.integers(0, 50)) if panic_time is not None else 0,
        delay_buckets=buckets,
        delay_window=window,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.floats(0.01, 1000),
    up=st.floats(1.01, 10),
    down=st.floats(1.01, 10),
    threshold=st.floats(1.1, 10),
    tbc=st.sampled_from([-1.0, 0.0, 211.0]),
    reachable=st.booleans(),
    ready=st.integers(0, 1000),
    stable=st.floats(0, 1e6),
    panic=st.floats(0, 1e6),
    state=decider_states(),
)
def test_desired_within_rate_bounds_and_state_not_mutated(
    target: float, up: float, down: float, threshold: float, tbc: float, reachable: bool,
    ready: int, stable: float, panic: float, state: DeciderState,
) -> None:
    sp = DeciderSpec(
        target_value=target, total_value=100.0, target_burst_capacity=tbc,
        panic_threshold=threshold, max_scale_up_rate=up, max_scale_down_rate=down,
        stable_window=60.0, scale_down_delay=0.0, activation_scale=0, reachable=reachable,
    )
    # no delay window, so the rate bounds apply to the output directly
    before = dataclasses.replace(state, delay_buckets=0, delay_window=())
    snapshot = copy.deepcopy(before)
    got, after = decide(sp, before, NOW, ready, stable, panic)
    assert before == snapshot
    assert got.valid
    r = max(1, ready)
    lo = math.floor(r / down) if reachable else 0
    hi = math.ceil(up * r)
    if not got.in_panic:
        assert lo <= got.desired_pods <= hi
        assert after.max_panic_pods == 0 and after.panic_time is None
    else:
        assert got.desired_pods >= lo
        assert got.desired_pods >= before.max_panic_pods   # the ratchet
        assert got.desired_pods == after.max_panic_pods

    # with its delay window, decide still leaves the input alone
    snapshot = copy.deepcopy(state)
    decide(sp, state, NOW, ready, stable, panic)
    assert state == snapshot


# --------------------------------------------------------------------------------------
# What replay's fast engine asks of the decider: steady ticks, fast-forward, the panic
# limit and the burst-capacity formula (scaler.decide.kpa and its array forms).


@pytest.mark.parametrize(("ready", "threshold", "limit"), [
    pytest.param(3, 2.0, 6, id="3-ready-at-200%:6/3=2.0"),
    pytest.param(1, 2.0, 2, id="1-ready-at-200%"),
    pytest.param(0, 2.0, 2, id="0-ready-counts-as-1"),
    pytest.param(10, 1.1, 11, id="10-ready-at-110%"),
    pytest.param(7, 3.5, 25, id="7-ready-at-350%:24.5->25"),
])
def test_panic_limit(ready: int, threshold: float, limit: int) -> None:
    assert panic_limit(ready, threshold) == limit


@settings(max_examples=500, deadline=None)
@given(ready=st.integers(0, 10_000), threshold=st.floats(1.1, 10),
       dppc=st.integers(0, 200_000))
def test_panic_limit_is_exactly_the_panic_test(ready: int, threshold: float, dppc: int) -> None:
    over = dppc / float(max(1, ready)) >= threshold   # decide's own test
    assert over == (dppc >= panic_limit(ready, threshold))


def test_excess_burst_capacity_numbers() -> None:
    assert excess_burst_capacity(DEFAULTS, 3, 70.0) == 19        # floor(300 − 211 − 70)
    assert excess_burst_capacity(DEFAULTS, 2, 70.0) == -81
    assert excess_burst_capacity(spec(target_burst_capacity=0.0), 3, 70.0) == 0
    assert excess_burst_capacity(spec(target_burst_capacity=-1.0), 3, 70.0) == -1
    assert excess_burst_capacity(spec(total_value=1e30), 3, 0.0) == INT32_MIN


@settings(max_examples=200, deadline=None)
@given(tbc=st.sampled_from([-1.0, 0.0, 211.0, 0.5]), total=st.sampled_from([1.0, 100.0, 1e12]),
       ready=st.lists(st.integers(0, 5000), min_size=1, max_size=20),
       panic=st.lists(st.one_of(st.floats(0, 1e7), st.just(math.nan)), min_size=20,
                      max_size=20))
def test_excess_burst_capacity_array_form_is_the_scalar_one(
    tbc: float, total: float, ready: list[int], panic: list[float],
) -> None:
    sp = spec(target_burst_capacity=tbc, total_value=total)
    panic = panic[:len(ready)]
    got = kpa_batch.excess_burst_capacity(sp, np.array(ready), np.array(panic))
    want = [math.nan if math.isnan(p) else excess_burst_capacity(sp, r, p)
            for r, p in zip(ready, panic)]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float64))


def test_raw_counts_array_form() -> None:
    got = kpa_batch.raw_counts(DEFAULTS, np.array([211.0, 210.0, 0.0, math.nan]))
    np.testing.assert_array_equal(got, [4.0, 3.0, 0.0, math.nan])


def test_a_calm_tick_is_steady_and_says_on_what_terms() -> None:
    # 3 ready, stable 200: raw 3; panic counts up to 5 keep it calm.
    before = DeciderState()
    _, after = decide(DEFAULTS, before, NOW, 3, 200.0, 200.0)
    assert steady(DEFAULTS, before, after, 3, 200.0) == Steady(raw_stable=3, panic_limit=6)


def test_a_panicking_tick_is_not_steady() -> None:
    before = DeciderState()
    _, after = decide(DEFAULTS, before, NOW, 3, 200.0, 420.0)   # 6 / 3 = 200 %: panic
    assert after.in_panic
    assert steady(DEFAULTS, before, after, 3, 200.0) is None


def test_a_delay_window_is_steady_only_when_it_holds_this_tick_alone() -> None:
    sp = spec(scale_down_delay=10.0)
    # An earlier, larger count still in the window: the next tick may see it expire.
    before = DeciderState(delay_buckets=5, delay_window=((int(NOW) // 2 - 3, 9),))
    _, after = decide(sp, before, NOW, 3, 200.0, 0.0)
    assert len(after.delay_window) == 2 and steady(sp, before, after, 3, 200.0) is None
    # A count recorded earlier into this same bucket may be larger than this tick's.
    same_bucket = DeciderState(delay_buckets=5, delay_window=((int(NOW) // 2, 3),))
    _, after = decide(sp, same_bucket, NOW, 3, 200.0, 0.0)
    assert steady(sp, same_bucket, after, 3, 200.0) is None
    # This tick's count alone, in a bucket it opened: steady.
    fresh = DeciderState(delay_buckets=5, delay_window=((int(NOW) // 2 - 1, 3),))
    _, after = decide(sp, fresh, NOW, 3, 200.0, 0.0)
    assert after.delay_window == ((int(NOW) // 2, 3),)
    assert steady(sp, fresh, after, 3, 200.0) == Steady(3, 6)


def test_fast_forward_moves_the_delay_window_to_the_last_repeated_tick() -> None:
    sp = spec(scale_down_delay=10.0)
    state = DeciderState(delay_buckets=5, delay_window=((500, 3),))
    assert fast_forward(sp, state, 1021.0) == DeciderState(delay_buckets=5,
                                                           delay_window=((510, 3),))
    calm = DeciderState(max_panic_pods=0)
    assert fast_forward(DEFAULTS, calm, 1021.0) is calm


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from([1.0, 10.0, 70.0]),
    threshold=st.sampled_from([1.1, 2.0, 10.0]),
    delay=st.sampled_from([0.0, 4.0, 11.0, 30.0]),
    activation=st.sampled_from([0, 2, 3]),
    ready=st.integers(0, 40),
    stable=st.floats(0, 3000),
    panic=st.floats(0, 3000),
    state=decider_states(),
    gaps=st.lists(st.sampled_from([1, 2, 3, 7, 60]), min_size=1, max_size=30),
    later=st.data(),
)
def test_a_steady_tick_is_repeated_exactly_and_fast_forward_lands_on_the_same_state(
    target: float, threshold: float, delay: float, activation: int, ready: int,
    stable: float, panic: float, state: DeciderState, gaps: list[int], later: st.DataObject,
) -> None:
    """What the fast engine relies on: after a steady tick, every later tick with the same
    ready count, the same raw stable count and a raw panic count under the limit decides
    the same, and ends in the state fast_forward gives for its time."""
    sp = spec(target_value=target, panic_threshold=threshold, scale_down_delay=delay,
              activation_scale=activation)
    start = initial_state(sp, ready, NOW - 1000)
    before = dataclasses.replace(start, panic_time=state.panic_time,
                                 max_panic_pods=state.max_panic_pods)
    first, after = decide(sp, before, NOW, ready, stable, panic)
    s = steady(sp, before, after, ready, stable)
    event("steady" if s is not None else "not steady")
    if s is None:
        return
    t, current = NOW, after
    for gap in gaps:
        t += gap
        # another average with the same raw stable count, and a calm panic average
        s2 = later.draw(st.floats((s.raw_stable - 1) * target, s.raw_stable * target)
                        .filter(lambda v: math.ceil(v / target) == s.raw_stable))
        p2 = later.draw(st.floats(0, max(0.0, (s.panic_limit - 1) * target))
                        .filter(lambda v: math.ceil(v / target) < s.panic_limit))
        got, current = decide(sp, current, t, ready, s2, p2)
        assert (got.desired_pods, got.in_panic) == (first.desired_pods, False)
        assert current == fast_forward(sp, after, t)
