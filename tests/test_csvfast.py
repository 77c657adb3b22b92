"""csvfast writes exactly the text Python's own formatting would, read back with csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.replay.report import csvfast

INT64 = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
SMALL_INTS = st.integers(min_value=-10**6, max_value=10**6)


def python_int(v: int) -> str:
    return str(int(v))


def python_fixed6(x: float) -> str:
    """What the decisions file promises: 6 decimals, trailing zeros dropped, NaN empty."""
    if math.isnan(x):
        return ""
    return f"{x:.6f}".rstrip("0").rstrip(".")


def cell_text(cells: np.ndarray) -> list[str]:
    """The text of each row of a cell matrix (padding bytes are zeros)."""
    return [bytes(row[row != 0]).decode("ascii") for row in cells]


def read_back(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def six_decimal_floats() -> st.SearchStrategy[float]:
    """Non-negative floats that are (the nearest double to) a decimal with <= 6 places."""
    exact = st.builds(lambda whole, frac, d: float(f"{whole}.{frac % 10**d:0{d}d}"),
                      st.integers(0, 10**9), st.integers(0, 10**6 - 1), st.integers(0, 6))
    rounded = st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda x: round(x, 6))
    return st.one_of(exact, rounded, st.just(0.0), st.just(float("nan")))


# ---------------------------------------------------------------------------------- int_cells

@pytest.mark.parametrize("values", [
    pytest.param([0], id="zero"),
    pytest.param([0, 0, 0], id="zeros"),
    pytest.param([7, 10, 100, 1000, 101, 9], id="mixed-widths-inner-zeros"),
    pytest.param([-1, 0, 1], id="around-zero"),
    pytest.param([-100, 5, -7], id="negatives-of-several-widths"),
    pytest.param([2**63 - 1, -(2**63) + 1, 0], id="int64-extremes"),
    pytest.param([10**18, 10**18 - 1], id="nineteen-digits"),
])
def test_int_cells_examples(values):
    assert cell_text(csvfast.int_cells(np.array(values, dtype=np.int64))) == \
        [python_int(v) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(INT64, SMALL_INTS), min_size=1, max_size=50))
def test_int_cells_match_str(values):
    cells = csvfast.int_cells(np.array(values, dtype=np.int64))
    assert cells.dtype == np.uint8 and cells.shape[0] == len(values)
    assert cell_text(cells) == [str(v) for v in values]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(SMALL_INTS, st.booleans()), min_size=1, max_size=40))
def test_int_cells_missing_are_empty(pairs):
    values = np.array([v for v, _ in pairs], dtype=np.int64)
    missing = np.array([m for _, m in pairs], dtype=bool)
    assert cell_text(csvfast.int_cells(values, missing)) == \
        ["" if m else str(v) for v, m in pairs]


# ------------------------------------------------------------------------------- fixed6_cells

@pytest.mark.parametrize(("value", "text"), [
    pytest.param(0.0, "0", id="zero"),
    pytest.param(1.0, "1", id="one"),
    pytest.param(10.0, "10", id="ten-keeps-its-zero"),
    pytest.param(0.5, "0.5", id="half"),
    pytest.param(167.875, "167.875", id="three-places"),
    pytest.param(173.5833333333, "173.583333", id="rounded-down"),
    pytest.param(0.0000019, "0.000002", id="rounded-up"),
    pytest.param(0.0000004, "0", id="rounds-to-zero"),
    pytest.param(0.9999996, "1", id="carries-into-whole"),
    pytest.param(100.000001, "100.000001", id="sixth-place"),
    pytest.param(1.10, "1.1", id="trailing-zero-dropped"),
    pytest.param(float("nan"), "", id="nan-empty"),
    pytest.param(123456789.25, "123456789.25", id="large"),
])
def test_fixed6_examples(value, text):
    assert cell_text(csvfast.fixed6_cells(np.array([value]))) == [text]
    if not math.isnan(value):
        assert python_fixed6(value) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(six_decimal_floats(), min_size=1, max_size=50))
def test_fixed6_cells_match_python(values):
    cells = csvfast.fixed6_cells(np.array(values, dtype=np.float64))
    assert cells.dtype == np.uint8 and cells.shape[0] == len(values)
    assert cell_text(cells) == [python_fixed6(v) for v in values]


# ---------------------------------------------------------------------------------- write_csv

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(INT64, six_decimal_floats(), SMALL_INTS, st.booleans()),
                min_size=0, max_size=40))
def test_write_csv_reads_back_as_python_would_write(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "out.csv"
    ints = np.array([r[0] for r in rows], dtype=np.int64)
    floats = np.array([r[1] for r in rows], dtype=np.float64)
    small = np.array([r[2] for r in rows], dtype=np.int64)
    missing = np.array([r[3] for r in rows], dtype=bool)
    csvfast.write_csv(path, ["a", "b", "c"], [
        csvfast.int_cells(ints),
        csvfast.fixed6_cells(floats),
        csvfast.int_cells(small, missing),
    ])
    expected = [["a", "b", "c"]] + [
        [str(i), python_fixed6(f), "" if m else str(s)] for i, f, s, m in rows]
    assert read_back(path) == expected
    # And byte for byte what a plain Python writer gives.
    lines = [",".join(row) for row in expected]
    assert path.read_bytes() == ("\n".join(lines) + "\n").encode()


def test_write_csv_single_column(tmp_path):
    path = tmp_path / "one.csv"
    csvfast.write_csv(path, ["n"], [csvfast.int_cells(np.array([3, -20, 0]))])
    assert path.read_text() == "n\n3\n-20\n0\n"


def test_write_csv_no_rows(tmp_path):
    path = tmp_path / "empty.csv"
    csvfast.write_csv(path, ["timestamp", "stable"], [
        csvfast.int_cells(np.zeros(0, dtype=np.int64)),
        csvfast.fixed6_cells(np.zeros(0)),
    ])
    assert path.read_text() == "timestamp,stable\n"


def test_write_csv_all_missing_row_keeps_its_commas(tmp_path):
    path = tmp_path / "gaps.csv"
    csvfast.write_csv(path, ["t", "x", "y"], [
        csvfast.int_cells(np.array([1, 2])),
        csvfast.fixed6_cells(np.array([np.nan, 1.5])),
        csvfast.int_cells(np.array([0, 4]), np.array([True, False])),
    ])
    assert read_back(path) == [["t", "x", "y"], ["1", "", ""], ["2", "1.5", "4"]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(INT64, six_decimal_floats(), st.booleans()), min_size=0, max_size=40),
       st.integers(1, 7))
def test_write_csv_blocks_formats_block_by_block_into_the_same_text(tmp_path_factory, rows,
                                                                    block):
    """Each block sizes its cells to its own widest value; the text is the same as one
    block for every row (and as Python's), whatever the block size."""
    path = tmp_path_factory.mktemp("csv") / "blocks.csv"
    ints = np.array([r[0] for r in rows], dtype=np.int64)
    floats = np.array([r[1] for r in rows], dtype=np.float64)
    missing = np.array([r[2] for r in rows], dtype=bool)
    asked = []

    def columns(a, b):
        asked.append((a, b))
        return [csvfast.int_columns(ints[a:b], missing[a:b]), csvfast.fixed6_columns(floats[a:b])]

    original = csvfast._ROWS_PER_BLOCK
    csvfast._ROWS_PER_BLOCK = block
    try:
        csvfast.write_csv_blocks(path, ["a", "b"], len(rows), columns)
    finally:
        csvfast._ROWS_PER_BLOCK = original
    lines = ["a,b"] + [f"{'' if m else i},{python_fixed6(f)}" for i, f, m in rows]
    assert path.read_bytes() == ("\n".join(lines) + "\n").encode()
    # one block at a time, in order, covering every row once
    assert asked == [(a, min(len(rows), a + block)) for a in range(0, len(rows), block)]
