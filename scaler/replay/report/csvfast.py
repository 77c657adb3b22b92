"""Write numeric columns as CSV with array operations.

A 14-day replay has 604,800 ticks; formatting them row by row in Python costs more than
the whole replay. Here every cell is laid out as a fixed-width run of bytes in one
``uint8`` matrix, with padding bytes set to 0; dropping the zero bytes of the flattened
matrix leaves exactly the CSV text, row after row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_COMMA = np.uint8(44)
_NEWLINE = np.uint8(10)
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_ROWS_PER_BLOCK = 1 << 16


def _digit_columns(mag: np.ndarray, width: int) -> list[np.ndarray]:
    """Decimal digits of non-negative integers, most significant first, as ASCII columns;
    leading zeros (all but the last digit) become padding (0)."""
    q = mag.astype(np.int32 if width <= 9 else np.int64)
    columns: list[np.ndarray] = []
    for place in range(width):
        q, r = np.divmod(q, 10)
        col = r.astype(np.uint8)
        col += 48
        if place:
            col[mag < _POW10[place]] = 0
        columns.append(col)
    columns.reverse()
    return columns


def int_columns(values: np.ndarray, missing: np.ndarray | None = None) -> list[np.ndarray]:
    """Integers as right-aligned decimal digit columns (no leading zeros, '-' for
    negatives); a missing cell is all padding."""
    v = np.asarray(values, dtype=np.int64)
    mag = np.abs(v)
    width = max(1, len(str(int(mag.max(initial=0)))))
    columns = _digit_columns(mag, width)
    neg = v < 0
    if neg.any():
        # The padding between the sign and the first digit is dropped with the zeros.
        columns.insert(0, np.where(neg, np.uint8(45), np.uint8(0)))
    if missing is not None and missing.any():
        for col in columns:
            col[missing] = 0
    return columns


def fixed6_columns(values: np.ndarray) -> list[np.ndarray]:
    """Non-negative floats with up to 6 decimals, trailing zeros dropped; NaN → empty."""
    v = np.asarray(values, dtype=np.float64)
    missing = np.isnan(v)
    if np.nanmax(v, initial=0.0) >= 9e12:
        return _formatted_columns(v, missing)   # beyond int64 at 6 decimals
    q = np.rint(np.where(missing, 0.0, v) * 1e6).astype(np.int64)
    whole, frac = np.divmod(q, 1_000_000)
    width = max(1, len(str(int(whole.max(initial=0)))))
    columns = _digit_columns(whole, width)
    columns.append(np.where(frac > 0, np.uint8(46), np.uint8(0)))
    f = frac.astype(np.int32)
    zeros_from = frac == 0        # all decimals from this place on are zero
    decimals = []
    for place in range(6):   # from the last decimal to the first
        f, r = np.divmod(f, 10)
        col = r.astype(np.uint8)
        col += 48
        # A trailing zero: nothing but zeros at and after this decimal.
        if place == 0:
            trailing = r == 0
        else:
            trailing &= r == 0
        col[trailing | zeros_from] = 0
        decimals.append(col)
    columns.extend(reversed(decimals))
    if missing.any():
        for col in columns:
            col[missing] = 0
    return columns


def _formatted_columns(v: np.ndarray, missing: np.ndarray) -> list[np.ndarray]:
    """Python's formatting, for values too large for the integer path (rare, slow)."""
    texts = ["" if m else (f"{x:.6f}".rstrip("0").rstrip(".")) for x, m in
             zip(v.tolist(), missing.tolist())]
    width = max(1, max(map(len, texts)))
    cells = np.array(texts, dtype=f"S{width}").view(np.uint8).reshape(len(texts), width)
    return list(cells.T.copy())


def int_cells(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """:func:`int_columns` as an (n, width) matrix."""
    return np.stack(int_columns(values, missing), axis=1)


def fixed6_cells(values: np.ndarray) -> np.ndarray:
    """:func:`fixed6_columns` as an (n, width) matrix."""
    return np.stack(fixed6_columns(values), axis=1)


def write_csv(path, header: list[str], columns: list) -> None:
    """Write CSV cells under ``header``. Each entry of ``columns`` is one CSV column: an
    (n, w) uint8 cell matrix or a list of w byte columns (0 = padding)."""
    as_lists = [list(c.T) if isinstance(c, np.ndarray) else c for c in columns]
    n = len(as_lists[0][0]) if as_lists else 0
    write_csv_blocks(path, header, n,
                     lambda a, b: [[col[a:b] for col in cells] for cells in as_lists])


def write_csv_blocks(path, header: list[str], n: int,
                     columns_of: Callable[[int, int], list]) -> None:
    """Write ``n`` rows under ``header``, formatting one block of rows at a time:
    ``columns_of(a, b)`` gives the columns of rows [a, b) as :func:`write_csv` takes them.
    Only one block's cells exist at once (a few MB), whatever the length of the file;
    the text is the same as formatting every row at once (padding is dropped)."""
    with open(path, "wb") as f:
        f.write((",".join(header) + "\n").encode())
        for a in range(0, n, _ROWS_PER_BLOCK):
            f.write(_block_bytes(columns_of(a, min(n, a + _ROWS_PER_BLOCK))))


def _block_bytes(columns: list) -> bytes:
    parts: list[np.ndarray] = []
    rows = 0
    for i, cells in enumerate(columns):
        byte_columns = list(cells.T) if isinstance(cells, np.ndarray) else cells
        rows = len(byte_columns[0])
        if i:
            parts.append(np.full(rows, _COMMA))
        parts.extend(byte_columns)
    parts.append(np.full(rows, _NEWLINE))
    # Stacked as rows then read transposed: numpy copies that faster than it fills 70
    # strided columns one by one.
    flat = np.stack(parts, axis=0).T.ravel()
    return flat[flat != 0].tobytes()
