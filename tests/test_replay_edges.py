"""`scaler replay` on inputs at the edges: clear errors (exit 2), never a traceback."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scaler import cli
from scaler.replay.report import csvfast


def recording(path, rows):
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


@pytest.mark.parametrize("args,fragment", [
    pytest.param(["--startup-delay", "nan"], "--startup-delay", id="nan-delay"),
    pytest.param(["--startup-delay", "inf"], "--startup-delay", id="infinite-delay"),
    pytest.param(["--startup-delay", "-1"], "--startup-delay", id="negative-delay"),
])
def test_bad_startup_delay(tmp_path, capsys, args, fragment):
    rec = recording(tmp_path / "r.csv", [(1_000_000_000 + i, 5) for i in range(10)])
    assert cli.main(["replay", str(rec), "--out", str(tmp_path / "o"), *args]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("value,fragment", [
    pytest.param("0s", "1ms to 1d", id="zero"),
    pytest.param("2d", "1ms to 1d", id="over-a-day"),
    pytest.param("soon", "--resolution", id="not-a-duration"),
    pytest.param("-5s", "--resolution", id="negative"),
])
def test_bad_resolution(tmp_path, capsys, value, fragment):
    rec = recording(tmp_path / "r.csv", [(1_000_000_000 + i, 5) for i in range(10)])
    assert cli.main(["replay", str(rec), "--out", str(tmp_path / "o"),
                     f"--resolution={value}"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_resolution_holds_each_row_and_the_summary_says_so(tmp_path, capsys):
    """Rows every 10 s: detected, each held 10 s. Forced to 1 s instead, 9 of every 10
    seconds are unknown, and the summary says how many."""
    import json

    rec = recording(tmp_path / "r.csv", [(1_000_000_000 + 10 * i, 140) for i in range(60)])
    for args, resolution, unknown in ((), 10.0, 0), (["--resolution", "1s"], 1.0, 531):
        out = tmp_path / f"o{resolution:g}"
        assert cli.main(["replay", str(rec), "--out", str(out), "--no-chart", *args]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["recording"]["resolution_seconds"] == resolution
        assert summary["recording"]["unknown_seconds"] == unknown
        printed = capsys.readouterr().out
        assert (f"{unknown:,} s unknown" if unknown else "no second unknown") in printed
    # Held, the load is 140 in every second: 2 replicas at 70 each, from the start.
    with open(tmp_path / "o10" / "decisions.csv") as f:
        assert {int(r["desired_replicas"]) for r in csv.DictReader(f)} == {2}


def test_a_load_needing_absurd_replicas_is_an_error_not_an_out_of_memory(tmp_path, capsys):
    rec = recording(tmp_path / "r.csv", [(1_000_000_000 + i, 1e12) for i in range(10)])
    assert cli.main(["replay", str(rec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "replicas" in err and "100,000" in err
    assert not (tmp_path / "o").exists()


def test_out_is_a_file_is_an_error(tmp_path, capsys):
    rec = recording(tmp_path / "r.csv", [(1_000_000_000 + i, 5) for i in range(10)])
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert cli.main(["replay", str(rec), "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_a_later_run_removes_charts_that_no_longer_match(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: scaler/v1\nkind: ScalingPolicy\nmetadata: {name: p}\n"
                      "spec:\n  scaleTargetRef: {name: p}\n  metric: {query: q}\n"
                      "  scaleToZero: {keepAlive: histogram}\n")
    out = tmp_path / "o"
    common = ["replay", "scaler/recordings/default.csv", "--policy", str(policy), "--out",
              str(out)]
    assert cli.main([*common, "--compare"]) == 0
    assert (out / "compare.png").exists()
    assert cli.main(common) == 0
    assert not (out / "compare.png").exists() and (out / "chart.png").exists()
    assert cli.main([*common, "--no-chart"]) == 0
    assert not (out / "chart.png").exists()


def test_very_large_values_are_written_exactly(tmp_path):
    values = np.array([2e13, 12345678901234.5, np.nan, 0.5])
    path = tmp_path / "d.csv"
    csvfast.write_csv(path, ["i", "v"], [csvfast.int_columns(np.arange(4)),
                                         csvfast.fixed6_columns(values)])
    with open(path) as f:
        got = [row["v"] for row in csv.DictReader(f)]
    assert got == ["20000000000000", "12345678901234.5", "", "0.5"]
