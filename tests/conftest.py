"""Fixtures shared by the test modules that need the real Prometheus.

Module-scoped: Prometheus' first sample takes ~6 s (its scrape manager applies targets on
a 5 s tick), so each module gets one exporter and one server, never one per test. A
module may override either fixture (e.g. to backfill history).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.exporter import LoadExporter
from support.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def load_exporter() -> Iterator[LoadExporter]:
    with LoadExporter() as exporter:
        yield exporter


@pytest.fixture(scope="module")
def prometheus(load_exporter: LoadExporter) -> Iterator[PrometheusServer]:
    with PrometheusServer([load_exporter.target]) as server:
        yield server


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the fault matrix (tests/test_fault_matrix.py) when its tests ran."""
    from support import faultmatrix

    if faultmatrix.ROWS:
        terminalreporter.write_sep("=", "fault matrix: a running daemon under injected faults")
        terminalreporter.write_line(faultmatrix.format_table(faultmatrix.ROWS))
